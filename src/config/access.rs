//! App access policies: who may use an app on the data plane and be issued
//! a token for it. Signed-in users are not trusted with each other's apps,
//! so an app created through the management API is its owner's alone unless
//! its policy says otherwise; apps of the config file are open to anyone
//! signed in unless the operator narrows them.
//!
//! The written form (`access = { mode = "list", users = [...] }` in TOML,
//! `"access": {"mode": "list", "emailDomains": [...]}` in the API) is
//! checked here into [`Access`]; e-mail domains only ever match a verified
//! e-mail (OIDC Core §5.1 `email_verified`).

use serde::{Deserialize, Serialize};

use super::validate::FieldError;

/// The policy as written (TOML keys; the API converts its camelCase form).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    /// `owner` (API apps only), `anyone`, or `list`.
    pub(crate) mode: String,
    #[serde(default)]
    pub(crate) users: Vec<String>,
    #[serde(default)]
    pub(crate) email_domains: Vec<String>,
    #[serde(default)]
    pub(crate) organizations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<String>,
}

/// The validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) mode: AccessMode,
    /// The creator of an API app; always allowed whatever the lists say.
    pub(crate) owner: Option<String>,
    /// Subjects.
    pub(crate) users: Vec<String>,
    /// Lower-case domains, compared exactly with a verified e-mail's domain.
    pub(crate) email_domains: Vec<String>,
    /// The identity provider's organization ids (`org_id`).
    pub(crate) organizations: Vec<String>,
    /// Group names the identity provider puts the user in (WorkOS SSO).
    pub(crate) groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessMode {
    Owner,
    Anyone,
    List,
}

impl AccessMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Anyone => "anyone",
            Self::List => "list",
        }
    }
}

/// The facts about a caller that a policy reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) subject: &'a str,
    pub(crate) email: Option<&'a str>,
    pub(crate) email_verified: bool,
    pub(crate) org_id: Option<&'a str>,
    pub(crate) groups: &'a [String],
}

impl Access {
    /// Open to anyone signed in (config-file apps by default).
    pub(crate) fn anyone() -> Self {
        Access {
            mode: AccessMode::Anyone,
            owner: None,
            users: Vec::new(),
            email_domains: Vec::new(),
            organizations: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub(crate) fn allows(&self, c: Caller<'_>) -> bool {
        if self.mode == AccessMode::Anyone {
            return true;
        }
        if self.owner.as_deref() == Some(c.subject) {
            return true;
        }
        if self.mode == AccessMode::Owner {
            return false;
        }
        if self.users.iter().any(|u| u == c.subject) {
            return true;
        }
        if let Some(org) = c.org_id {
            if self.organizations.iter().any(|o| o == org) {
                return true;
            }
        }
        if c.groups.iter().any(|g| self.groups.contains(g)) {
            return true;
        }
        let domain = c
            .email
            .filter(|_| c.email_verified)
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        domain.is_some_and(|d| self.email_domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
    }

    /// The written form, as `GET …/config` shows it.
    pub(crate) fn to_raw(&self) -> RawAccess {
        RawAccess {
            mode: self.mode.as_str().into(),
            users: self.users.clone(),
            email_domains: self.email_domains.clone(),
            organizations: self.organizations.clone(),
            groups: self.groups.clone(),
        }
    }
}

const MAX_ENTRIES: usize = 1000;

/// Validates a written policy. `owner` is the app's creator (API apps); a
/// config-file app has none, so `owner` mode is refused for it.
pub(crate) fn access(raw: Option<RawAccess>, owner: Option<&str>) -> Result<Access, FieldError> {
    let fail = |field: &str, msg: &str| Err((format!("access.{field}"), msg.to_string()));
    let Some(raw) = raw else {
        return Ok(match owner {
            Some(o) => Access {
                mode: AccessMode::Owner,
                owner: Some(o.to_string()),
                ..Access::anyone()
            },
            None => Access::anyone(),
        });
    };
    let mode = match raw.mode.as_str() {
        "owner" if owner.is_some() => AccessMode::Owner,
        "owner" => {
            return fail(
                "mode",
                "apps of the config file have no owner: use anyone or list",
            )
        }
        "anyone" => AccessMode::Anyone,
        "list" => AccessMode::List,
        _ => return fail("mode", "must be owner, anyone or list"),
    };
    let lists =
        raw.users.len() + raw.email_domains.len() + raw.organizations.len() + raw.groups.len();
    if mode != AccessMode::List && lists > 0 {
        return fail(
            "mode",
            "users, email_domains, organizations and groups apply with mode = list only",
        );
    }
    if mode == AccessMode::List && lists == 0 {
        return fail(
            "users",
            "mode = list needs at least one of users, email_domains, organizations, groups",
        );
    }
    for (name, list) in [
        ("users", &raw.users),
        ("email_domains", &raw.email_domains),
        ("organizations", &raw.organizations),
        ("groups", &raw.groups),
    ] {
        if list.len() > MAX_ENTRIES {
            return fail(name, "has more than 1000 entries");
        }
        if list.iter().any(|v| v.trim().is_empty() || v.len() > 256) {
            return fail(name, "entries must be 1-256 characters");
        }
    }
    let mut email_domains = Vec::with_capacity(raw.email_domains.len());
    for d in &raw.email_domains {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        let ok = d.contains('.')
            && !d.starts_with('.')
            && !d.ends_with('.')
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return fail("email_domains", "entries must be domains like example.com");
        }
        email_domains.push(d);
    }
    Ok(Access {
        mode,
        owner: owner.map(str::to_owned),
        users: raw.users,
        email_domains,
        organizations: raw.organizations,
        groups: raw.groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller<'a>(sub: &'a str, email: Option<&'a str>, verified: bool) -> Caller<'a> {
        Caller {
            subject: sub,
            email,
            email_verified: verified,
            org_id: None,
            groups: &[],
        }
    }

    fn list(users: &[&str], domains: &[&str], orgs: &[&str]) -> RawAccess {
        RawAccess {
            mode: "list".into(),
            users: users.iter().map(|s| s.to_string()).collect(),
            email_domains: domains.iter().map(|s| s.to_string()).collect(),
            organizations: orgs.iter().map(|s| s.to_string()).collect(),
            groups: vec![],
        }
    }

    #[test]
    fn api_apps_default_to_their_owner_and_config_apps_to_anyone() {
        let owned = access(None, Some("ada")).unwrap();
        assert!(owned.allows(caller("ada", None, false)));
        assert!(!owned.allows(caller("bob", None, false)));
        let open = access(None, None).unwrap();
        assert!(open.allows(caller("bob", None, false)));
        assert!(access(
            Some(RawAccess {
                mode: "owner".into(),
                ..Default::default()
            }),
            None
        )
        .is_err());
    }

    #[test]
    fn lists_match_subjects_verified_domains_and_organizations() {
        let a = access(
            Some(list(&["carol"], &["@Example.com"], &["org_1"])),
            Some("ada"),
        )
        .unwrap();
        assert!(a.allows(caller("ada", None, false)), "the owner always");
        assert!(a.allows(caller("carol", None, false)));
        assert!(a.allows(caller("dan", Some("dan@example.com"), true)));
        assert!(
            !a.allows(caller("eve", Some("eve@example.com"), false)),
            "unverified"
        );
        assert!(!a.allows(caller("eve", Some("eve@sub.example.com"), true)));
        assert!(!a.allows(caller("eve", Some("eve@example.com.evil"), true)));
        let org = Caller {
            org_id: Some("org_1"),
            ..caller("frank", None, false)
        };
        assert!(a.allows(org));
    }

    #[test]
    fn malformed_policies_name_the_field() {
        let e = access(Some(list(&[], &["not a domain"], &[])), None).unwrap_err();
        assert_eq!(e.0, "access.email_domains");
        let e = access(Some(list(&[], &[], &[])), None).unwrap_err();
        assert_eq!(e.0, "access.users");
        let mut anyone_with_list = list(&["x"], &[], &[]);
        anyone_with_list.mode = "anyone".into();
        assert_eq!(
            access(Some(anyone_with_list), None).unwrap_err().0,
            "access.mode"
        );
    }
}
