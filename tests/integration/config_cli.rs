//! `drio-gateway --config FILE --validate`: exit 0 for a valid file, exit 2
//! with an error naming the file and the offending key otherwise.
//!
//! Each broken config is a known-valid generated one with a single change,
//! so a rejection can only come from that change.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::{AppSpec, GatewayBuilder, Layout, TestGateway};
use crate::support::ports::free_port;

const BINARY: &str = env!("CARGO_BIN_EXE_drio-gateway");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/gateway.toml");

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `--validate` on `path`. Fails the test (instead of hanging) if the
/// process does not exit promptly, e.g. because it started serving.
fn validate(path: &Path) -> Outcome {
    let mut child = Command::new(BINARY)
        .arg("--config")
        .arg(path)
        .arg("--validate")
        .env_remove("DRIO_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drio-gateway");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("poll child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("--validate on {} did not exit within 10 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect output");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `toml` to a file in `dir` and validates it.
fn validate_text(dir: &Path, toml: &str) -> (Outcome, PathBuf) {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, toml).expect("write config");
    (validate(&path), path)
}

/// A valid config with one app, as the harness would generate it, on free
/// ports (a test that starts the binary must never meet a fixed port that a
/// parallel run holds).
fn generated(builder: &GatewayBuilder, dir: &Path) -> String {
    generated_on(builder, dir, free_port())
}

/// Like [`generated`], with the proxy listener (and `public_url`) on `proxy_port`.
fn generated_on(builder: &GatewayBuilder, dir: &Path, proxy_port: u16) -> String {
    builder.render(&Layout {
        proxy_port,
        admin_port: free_port(),
        dir,
    })
}

fn one_app() -> GatewayBuilder {
    TestGateway::new().app_with(AppSpec::new("notes", "http://127.0.0.1:3001"))
}

/// True when `word` occurs in `text` as a whole identifier, not as part of a
/// longer one (`prox` inside `proxy` does not count).
fn names(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[track_caller]
fn assert_rejected(out: &Outcome, path: &Path, key: &str) {
    assert_eq!(out.code, Some(2), "exit code; stderr: {}", out.stderr);
    assert!(
        names(&out.stderr, key),
        "stderr names `{key}`: {}",
        out.stderr
    );
    let file = path.display().to_string();
    assert!(
        out.stderr.contains(&file),
        "stderr names {file}: {}",
        out.stderr
    );
}

#[test]
fn example_config_is_valid() {
    let out = validate(Path::new(EXAMPLE));
    assert_eq!(
        out.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn generated_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = validate_text(dir.path(), &generated(&one_app(), dir.path()));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
}

#[test]
fn unknown_key_is_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let valid = generated(&one_app(), dir.path());
    let typo = valid.replacen("\nproxy = ", "\nprox = ", 1);
    assert_ne!(typo, valid, "the template has a [listen] proxy key");
    let (out, path) = validate_text(dir.path(), &typo);
    assert_rejected(&out, &path, "prox");
}

#[test]
fn non_http_upstream_is_rejected_naming_the_app_key() {
    let dir = tempfile::tempdir().unwrap();
    let builder = TestGateway::new().app_with(AppSpec::new("notes", "ftp://x"));
    let (out, path) = validate_text(dir.path(), &generated(&builder, dir.path()));
    assert_rejected(&out, &path, "apps[0].upstream");
}

#[test]
fn duplicate_slugs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut second = AppSpec::new("notes", "http://127.0.0.1:3002");
    second.id = "app_notes_2".into();
    let builder = one_app().app_with(second);
    let (out, path) = validate_text(dir.path(), &generated(&builder, dir.path()));
    assert_rejected(&out, &path, "slug");
    assert!(
        out.stderr.contains("apps[1]"),
        "names the second app: {}",
        out.stderr
    );
}

/// A busy listen address is a start error naming the key, not a silent retry
/// loop while the admin listener reports healthy.
#[test]
fn busy_proxy_address_fails_fast_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let text = generated_on(&one_app(), dir.path(), port);
    assert!(
        text.contains(&format!("proxy = \"127.0.0.1:{port}\"")),
        "{text}"
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).expect("write config");
    let mut child = Command::new(BINARY)
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("poll").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gateway kept running with its proxy address taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("listen.proxy"), "{stderr}");
}

#[test]
fn protected_app_without_a_way_to_verify_tokens_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (out, path) = validate_text(dir.path(), &generated(&one_app().protected(), dir.path()));
    assert_rejected(&out, &path, "apps[0].public");
}

#[test]
fn symmetric_jwt_algorithms_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let builder = one_app().protected().raw_toml(
        "[auth]\nissuer = \"https://idp.example.com\"\njwks_uri = \"https://idp.example.com/jwks\"\nalgorithms = [\"RS256\", \"HS256\"]",
    );
    let (out, path) = validate_text(dir.path(), &generated(&builder, dir.path()));
    assert_rejected(&out, &path, "auth.algorithms");
    assert!(out.stderr.contains("HS256"), "{}", out.stderr);
}

#[test]
fn introspection_secret_must_be_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let builder = one_app().protected().raw_toml(
        "[auth]\nintrospection_endpoint = \"https://idp.example.com/introspect\"\nintrospection_client_id = \"gw\"\nintrospection_client_secret_env = \"DRIO_TEST_UNSET_SECRET_VAR\"",
    );
    let (out, path) = validate_text(dir.path(), &generated(&builder, dir.path()));
    assert_rejected(&out, &path, "auth.introspection_client_secret_env");
}

#[test]
fn identity_headers_cannot_overwrite_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let builder = TestGateway::new()
        .app_with(AppSpec::new("notes", "http://127.0.0.1:3001"))
        .app_toml("[apps.identity_headers]\nsubject = \"Authorization\"");
    let (out, path) = validate_text(dir.path(), &generated(&builder, dir.path()));
    assert_rejected(&out, &path, "apps[0].identity_headers.subject");
}

/// `[oauth]` and `[idp]` mistakes, each named by key.
#[test]
fn oauth_and_idp_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = "[idp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"gw\"\n";
    let cases = [
        (
            format!("[oauth]\ntoken_mode = \"magic\"\n{oidc}"),
            "oauth.token_mode",
        ),
        (
            format!("[oauth]\nsigning_algorithm = \"HS256\"\n{oidc}"),
            "oauth.signing_algorithm",
        ),
        ("[oauth]\n".to_string(), "idp"),
        (oidc.to_string(), "idp"),
        ("[oauth]\n[idp]\nkind = \"saml\"\n".to_string(), "idp.kind"),
        (
            "[oauth]\n[idp]\nkind = \"oidc\"\nclient_id = \"gw\"\n".to_string(),
            "idp.issuer",
        ),
        (
            "[oauth]\n[idp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\n".to_string(),
            "idp.client_id",
        ),
        (
            format!("[oauth]\n{oidc}client_secret_env = \"DRIO_TEST_UNSET_SECRET\"\n"),
            "idp.client_secret_env",
        ),
        (
            format!("[oauth]\n{oidc}token_endpoint_auth_method = \"private_key_jwt\"\n"),
            "idp.token_endpoint_auth_method",
        ),
        (
            "[oauth]\ntoken_mode = \"upstream\"\n[idp]\nkind = \"dev\"\n".to_string(),
            "oauth.token_mode",
        ),
        (format!("[oauth]\nunknown_knob = 1\n{oidc}"), "unknown_knob"),
    ];
    for (section, key) in cases {
        let (out, path) = validate_text(
            dir.path(),
            &generated(&one_app().raw_toml(&section), dir.path()),
        );
        assert_rejected(&out, &path, key);
    }
}

/// The dev sign-in page lets anyone be anyone: only on a loopback public_url.
#[test]
fn the_dev_idp_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let dev = one_app().raw_toml("[oauth]\n[idp]\nkind = \"dev\"\n");
    let (ok, _) = validate_text(dir.path(), &generated(&dev, dir.path()));
    assert_eq!(ok.code, Some(0), "loopback is fine: {}", ok.stderr);
    let proxy = free_port();
    let public = generated_on(&dev, dir.path(), proxy).replacen(
        &format!("public_url = \"http://127.0.0.1:{proxy}\""),
        "public_url = \"https://mcp.example.com\"",
        1,
    );
    let (out, path) = validate_text(dir.path(), &public);
    assert_rejected(&out, &path, "idp.kind");
    assert!(out.stderr.contains("loopback"), "{}", out.stderr);
}

/// The production example validates once its secrets are in the environment.
#[test]
fn workos_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/workos.toml");
    let run = |with_env: bool| {
        let mut cmd = Command::new(BINARY);
        cmd.args(["--config", path, "--validate"])
            .env_remove("DRIO_CONFIG")
            .stdin(Stdio::null());
        if with_env {
            cmd.env("WORKOS_CLIENT_SECRET", "sk_test")
                .env("REDIS_URL", "redis://127.0.0.1:1");
        } else {
            cmd.env_remove("WORKOS_CLIENT_SECRET")
                .env("REDIS_URL", "redis://127.0.0.1:1");
        }
        cmd.output().expect("run --validate")
    };
    let ok = run(true);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let missing = run(false);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("idp.client_secret_env"));
}

/// The dev sign-in page signs anyone in: its listener must not be reachable
/// from other machines either (a loopback public_url alone does not stop a
/// neighbour from calling 0.0.0.0:port directly).
#[test]
fn the_dev_idp_refuses_a_listener_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let dev = generated(
        &one_app().raw_toml("[oauth]\n[idp]\nkind = \"dev\"\n"),
        dir.path(),
    );
    // The generated config listens on a free loopback port: swap that line.
    let proxy_line = dev
        .lines()
        .find(|l| l.starts_with("proxy = \"127.0.0.1:"))
        .expect("the template listens on loopback")
        .to_string();
    for addr in ["0.0.0.0:18080", "10.1.2.3:18080", "[::]:18080"] {
        let text = dev.replacen(&proxy_line, &format!("proxy = \"{addr}\""), 1);
        assert_ne!(text, dev);
        let (out, path) = validate_text(dir.path(), &text);
        assert_rejected(&out, &path, "listen.proxy");
        assert!(out.stderr.contains("loopback"), "{}", out.stderr);
    }
    for addr in ["127.0.0.2:18080", "[::1]:18080"] {
        let text = dev.replacen(&proxy_line, &format!("proxy = \"{addr}\""), 1);
        let (ok, _) = validate_text(dir.path(), &text);
        assert_eq!(ok.code, Some(0), "{addr} is loopback: {}", ok.stderr);
    }
}
