//! Every store key the gateway writes, in one place (issue 14, layout.md:
//! "every store key prefix is in `store/keys.rs`").
//!
//! Keys are `{prefix}{rest}`; every prefix ends with `:` so that no record of
//! one kind can be read as another (`consent:` and `consented:` differ at the
//! colon). Callers never spell a prefix: they call the function for the
//! record they mean, and `tests/integration/layering.rs` fails if a string
//! literal starting with one of [`PREFIXES`] appears outside `store/`.
//! The Redis backend adds its configured `key_prefix` in front of all of
//! these; pub/sub channel names are not keys and live with their users.
//!
//! Parts that come from users (hosts, slugs, client ids) are used as-is:
//! the prefix is fixed and the record type is decided by the caller, so a
//! hostile part can only name another record of the same kind.

/// Every prefix, for the collision test and the layering test (which reads
/// this list from the source text: one literal per line).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const PREFIXES: &[&str] = &[
    "app:",
    "audit:",
    "client:",
    "code:",
    "conn:",
    "consent:",
    "consented:",
    "ctkt:",
    "devcode:",
    "elcap:",
    "host:",
    "lock:rt:",
    "lock:sess:",
    "lproof:",
    "oauth:keys",
    "pend:",
    "rl:app:",
    "rl:client:",
    "rl:reg:",
    "rl:revoke:",
    "rl:tool:",
    "rl:user:",
    "rtans:",
    "secret:",
    "sess:",
    "slug:",
    "tok:",
    "tools:",
    "uconfirm:",
    "uconnect:",
    "used:",
    "user:",
    "utok:",
];

// ---- catalog ---------------------------------------------------------------

/// Prefix of every app record (`app:{id}`), for scans.
pub(crate) const APPS: &str = "app:";
/// Prefix of every connection record, for scans.
pub(crate) const CONNECTIONS: &str = "conn:";
/// Prefix of every sealed connection secret, for the start-up check.
pub(crate) const SECRETS: &str = "secret:";

pub(crate) fn app(id: &str) -> String {
    format!("{APPS}{id}")
}

/// Prefix of one app's connections (`conn:{app_id}:`), for scans.
pub(crate) fn app_connections(app_id: &str) -> String {
    format!("{CONNECTIONS}{app_id}:")
}

pub(crate) fn connection(app_id: &str, auth_id: &str) -> String {
    format!("{CONNECTIONS}{app_id}:{auth_id}")
}

/// An app's capped stream of audit events (see `crate::audit`).
pub(crate) fn audit_stream(app_id: &str) -> String {
    format!("audit:{app_id}")
}

pub(crate) fn tools(app_id: &str) -> String {
    format!("tools:{app_id}")
}

/// A connection's sealed secrets, by their opaque reference.
pub fn secret(reference: &str) -> String {
    format!("{SECRETS}{reference}")
}

/// The app owning a public host name.
pub(crate) fn host(host: &str) -> String {
    format!("host:{host}")
}

/// The app owning a slug.
pub(crate) fn slug(slug: &str) -> String {
    format!("slug:{slug}")
}

// ---- authorization server --------------------------------------------------

/// The gateway's signing keys (one record for all of them).
pub(crate) const SIGNING_KEYS: &str = "oauth:keys";

/// A signing key's private half is sealed bound to this name (the record
/// holds several keys; each is bound to its own `kid`). Not a store key of
/// its own: the name under [`SIGNING_KEYS`] the vault binds it to.
pub(crate) fn signing_key(kid: &str) -> String {
    format!("{SIGNING_KEYS}:{kid}")
}

/// A registered client (RFC 7591).
pub(crate) fn client(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// A pending authorization, by the `state` sent to the IdP.
pub(crate) fn pending(state: &str) -> String {
    format!("pend:{state}")
}

/// An authorization code, by its SHA-256 (hex).
pub(crate) fn auth_code(code_hash: &str) -> String {
    format!("code:{code_hash}")
}

/// A redeemed code, by its SHA-256 (hex): replay detection.
pub(crate) fn used_code(code_hash: &str) -> String {
    format!("used:{code_hash}")
}

/// A dev-login code, by its SHA-256 (hex).
pub(crate) fn dev_code(code_hash: &str) -> String {
    format!("devcode:{code_hash}")
}

/// A consent page awaiting the user's answer.
pub(crate) fn consent(id: &str) -> String {
    format!("consent:{id}")
}

/// A remembered approval: hashes of user, client and audience.
pub(crate) fn consented(sub_hash: &str, client_hash: &str, audience_hash: &str) -> String {
    format!("consented:{sub_hash}:{client_hash}:{audience_hash}")
}

/// A refresh session.
pub(crate) fn session(sid: &str) -> String {
    format!("sess:{sid}")
}

/// The answer to an upstream (pass-through) refresh, by the token's hash.
pub(crate) fn refresh_answer(token_hash: &str) -> String {
    format!("rtans:{token_hash}")
}

/// The lease serialising refreshes of one session.
pub(crate) fn session_lock(sid: &str) -> String {
    format!("lock:sess:{sid}")
}

/// The lease serialising refreshes of one upstream refresh token.
pub(crate) fn refresh_lock(token_hash: &str) -> String {
    format!("lock:rt:{token_hash}")
}

/// A signed-in user's profile.
pub(crate) fn user(sub: &str) -> String {
    format!("user:{sub}")
}

/// An issued access token's record, by its SHA-256 (hex).
pub(crate) fn token(hash_hex: &str) -> String {
    format!("tok:{hash_hex}")
}

/// Registration counter of one client address bucket in one window.
pub(crate) fn registration_limit(bucket: &str, window_secs: u64, slot: u64) -> String {
    format!("rl:reg:{bucket}:{window_secs}:{slot}")
}

/// Revocation counter of one client address in one minute.
pub(crate) fn revocation_limit(ip: &str, minute: u64) -> String {
    format!("rl:revoke:{ip}:{minute}")
}

/// A rate-limit cell (GCRA, `src/limits/`) of one app's caller: `who` is
/// `sub:{subject}` or `addr:{bucket}`.
pub(crate) fn limit_user(app_id: &str, who: &str) -> String {
    format!("rl:user:{app_id}:{who}")
}

/// A rate-limit cell of one OAuth client of an app.
pub(crate) fn limit_client(app_id: &str, client_id: &str) -> String {
    format!("rl:client:{app_id}:{client_id}")
}

/// A rate-limit cell of a whole app.
pub(crate) fn limit_app(app_id: &str) -> String {
    format!("rl:app:{app_id}")
}

/// A rate-limit cell of one tool of an app (all callers together).
pub(crate) fn limit_tool(app_id: &str, tool: &str) -> String {
    format!("rl:tool:{app_id}:{tool}")
}

/// A client's URL-mode elicitation capability, remembered for one MCP
/// session of one user of one app (`user_session` is a digest).
pub(crate) fn elicitation_capability(app_id: &str, user_session: &str) -> String {
    format!("elcap:{app_id}:{user_session}")
}

// ---- per-user upstream credentials -----------------------------------------

/// A user's upstream tokens for one connection, by the subject's SHA-256.
pub(crate) fn user_tokens(auth_id: &str, subject_hash: &str) -> String {
    format!("utok:{auth_id}:{subject_hash}")
}

/// A connect link's ticket.
pub(crate) fn connect_ticket(ticket: &str) -> String {
    format!("ctkt:{ticket}")
}

/// Proof that the browser holding a connect link signed in as the user it
/// was issued to (`oauth::proof`), by its one-time token.
pub(crate) fn link_proof(token: &str) -> String {
    format!("lproof:{token}")
}

/// A user-connect flow in progress, by its `state`.
pub(crate) fn user_connect(state: &str) -> String {
    format!("uconnect:{state}")
}

/// A user-connect confirmation awaiting the user.
pub(crate) fn user_confirm(id: &str) -> String {
    format!("uconfirm:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefixes that are meant to nest: the `lock:` and `rl:` families.
    fn family(p: &str) -> &str {
        match p.find(':') {
            Some(i) if ["lock", "rl"].contains(&&p[..i]) => &p[..=i],
            _ => p,
        }
    }

    #[test]
    fn no_prefix_is_a_prefix_of_another() {
        for a in PREFIXES {
            for b in PREFIXES {
                if a != b {
                    assert!(!b.starts_with(a), "`{a}` is a prefix of `{b}`");
                    // Only the intended families share a leading segment.
                    if family(a) == family(b) {
                        assert!(family(a).len() < a.len(), "`{a}` and `{b}` collide");
                    }
                }
            }
        }
    }

    #[test]
    fn prefixes_are_listed_once_and_sorted() {
        let mut sorted = PREFIXES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, PREFIXES, "keep PREFIXES sorted and unique");
    }

    #[test]
    fn every_function_uses_a_listed_prefix() {
        let made = [
            app("a"),
            app_connections("a"),
            connection("a", "b"),
            tools("a"),
            audit_stream("a"),
            secret("r"),
            limit_user("a", "sub:s"),
            limit_client("a", "c"),
            limit_app("a"),
            limit_tool("a", "t"),
            elicitation_capability("a", "h"),
            host("h"),
            link_proof("p"),
            slug("s"),
            SIGNING_KEYS.to_string(),
            signing_key("k"),
            client("c"),
            pending("s"),
            auth_code("h"),
            used_code("h"),
            dev_code("h"),
            consent("i"),
            consented("a", "b", "c"),
            session("s"),
            refresh_answer("h"),
            session_lock("s"),
            refresh_lock("h"),
            user("u"),
            token("h"),
            registration_limit("b", 60, 1),
            revocation_limit("i", 1),
            user_tokens("a", "h"),
            connect_ticket("t"),
            user_connect("s"),
            user_confirm("i"),
        ];
        for k in made {
            let owners: Vec<_> = PREFIXES.iter().filter(|p| k.starts_with(**p)).collect();
            assert_eq!(owners.len(), 1, "`{k}` is owned by {owners:?}");
        }
    }
}
