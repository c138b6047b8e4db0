//! `TestWorkOs`: a hermetic fake of the WorkOS SSO API (seed `004_*`):
//! `GET /sso/authorize` (checks `client_id`, `redirect_uri`,
//! `response_type=code` and exactly one of `organization`, `connection`,
//! `provider`; answers the browser with a redirect carrying a code, or an
//! `error`) and `POST /sso/token` (form `client_id`, `client_secret` = the
//! API key, `grant_type=authorization_code`, `code`; single-use codes, a
//! replay is `invalid_grant`), answering `{access_token, profile}`.
//!
//! The profile is the configured person, signed in through whatever the
//! authorize request named: its `organization_id`, `connection_id` and
//! `connection_type` follow the request, as WorkOS's would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::fake_http::{json_reply, redirect, FakeRequest, FakeServer, Reply};

pub const CLIENT_ID: &str = "client_01TESTWORKOS";
pub const API_KEY: &str = "sk_test_workos_api_key_0123";
/// The organization every connection of this fake belongs to unless named.
pub const CONNECTION_ORG: &str = "org_conn_owner";

#[derive(Clone)]
pub struct Person {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub groups: Vec<String>,
}

impl Person {
    pub fn new(id: &str, email: &str) -> Person {
        Person {
            id: id.into(),
            email: email.into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            groups: vec![],
        }
    }
}

#[derive(Default)]
struct State {
    person: Option<Person>,
    /// The next authorize answers with this `error` and `error_description`.
    error: Option<(String, String)>,
    codes: HashMap<String, Value>,
    issued: u32,
    authorizes: Vec<HashMap<String, String>>,
    token_forms: Vec<HashMap<String, String>>,
    pipes: super::workos_pipes::PipesState,
    base: String,
}

pub struct TestWorkOs {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

impl TestWorkOs {
    pub async fn start() -> TestWorkOs {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = FakeServer::start(move |r| {
            let s = shared.clone();
            async move {
                let delay = s.lock().unwrap().pipes.delay_ms;
                if delay > 0
                    && r.path.ends_with("/token")
                    && r.path.starts_with("/data-integrations/")
                {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                handle(&s, r)
            }
        })
        .await;
        state.lock().unwrap().base = server.url("");
        let me = TestWorkOs { server, state };
        me.set_person(Person::new("prof_01ADA", "ada@acme.com"));
        me
    }

    /// The API base (`idp.issuer`).
    pub fn api(&self) -> String {
        self.server.url("")
    }

    pub fn set_person(&self, p: Person) {
        self.state.lock().unwrap().person = Some(p);
    }

    pub fn fail_next(&self, error: &str, description: &str) {
        self.state.lock().unwrap().error = Some((error.into(), description.into()));
    }

    pub fn authorizes(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().authorizes.clone()
    }

    pub fn token_forms(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().token_forms.clone()
    }

    /// Pipes: what `POST …/token` answers for WorkOS user `user`.
    pub fn pipes_answer(&self, user: &str, answer: serde_json::Value) {
        self.state
            .lock()
            .unwrap()
            .pipes
            .answers
            .insert(user.into(), answer);
    }

    /// Pipes: the bodies and Authorization headers of calls to `action`.
    pub fn pipes_calls(&self, action: &str) -> Vec<(serde_json::Value, String)> {
        let s = self.state.lock().unwrap();
        s.pipes
            .calls
            .iter()
            .filter(|c| c.0 == action)
            .map(|c| (c.1.clone(), c.2.clone()))
            .collect()
    }

    pub fn pipes_delay_ms(&self, ms: u64) {
        self.state.lock().unwrap().pipes.delay_ms = ms;
    }
}

fn handle(state: &Mutex<State>, r: FakeRequest) -> Reply {
    let mut s = state.lock().unwrap();
    let base = s.base.clone();
    if let Some(reply) = super::workos_pipes::handle(&mut s.pipes, &base, &r) {
        return reply;
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/sso/authorize") => {
            let q = r.query.clone();
            s.authorizes.push(q.clone());
            let get = |k: &str| q.get(k).map(String::as_str);
            let targets = ["organization", "connection", "provider"]
                .iter()
                .filter(|k| q.contains_key(**k))
                .count();
            if get("client_id") != Some(CLIENT_ID)
                || get("response_type") != Some("code")
                || get("redirect_uri").is_none()
                || targets != 1
            {
                return json_reply(400, json!({"error": "invalid_request"}));
            }
            let back = get("redirect_uri").unwrap_or_default().to_string();
            let st = get("state").unwrap_or_default().to_string();
            if let Some((e, d)) = s.error.take() {
                return redirect(&with_query(
                    &back,
                    &[("error", &e), ("error_description", &d), ("state", &st)],
                ));
            }
            let person = s.person.clone().expect("a person");
            let (org, conn, kind) = match (get("organization"), get("connection"), get("provider"))
            {
                (Some(o), _, _) => (
                    Some(o.to_string()),
                    format!("conn_of_{o}"),
                    "SAML".to_string(),
                ),
                (_, Some(c), _) => (
                    Some(CONNECTION_ORG.to_string()),
                    c.to_string(),
                    "OktaSAML".to_string(),
                ),
                (_, _, Some(p)) => (None, format!("conn_{p}"), p.to_string()),
                _ => unreachable!(),
            };
            s.issued += 1;
            let code = format!("01CODE{}", s.issued);
            let profile = json!({
                "id": person.id, "email": person.email, "first_name": person.first_name,
                "last_name": person.last_name, "organization_id": org, "connection_id": conn,
                "connection_type": kind, "idp_id": "12345", "role": {"slug": "member"},
                "groups": person.groups, "raw_attributes": {},
            });
            s.codes.insert(code.clone(), profile);
            redirect(&with_query(&back, &[("code", &code), ("state", &st)]))
        }
        ("POST", "/sso/token") => {
            let form = r.form();
            s.token_forms.push(form.clone());
            let get = |k: &str| form.get(k).map(String::as_str);
            if get("client_id") != Some(CLIENT_ID) || get("client_secret") != Some(API_KEY) {
                return json_reply(
                    401,
                    json!({"error": "unauthorized", "error_description": "Invalid client secret."}),
                );
            }
            if get("grant_type") != Some("authorization_code") || get("code").is_none() {
                return json_reply(400, json!({"error": "invalid_request"}));
            }
            let code = get("code").unwrap_or_default().to_string();
            // Single use: a replayed code is gone.
            let Some(profile) = s.codes.remove(&code) else {
                return json_reply(
                    400,
                    json!({"error": "invalid_grant",
                    "error_description": format!("The code '{code}' has expired or is invalid.")}),
                );
            };
            json_reply(
                200,
                json!({"access_token": format!("wos_at_{code}"), "profile": profile}),
            )
        }
        _ => json_reply(404, json!({"error": "not_found"})),
    }
}

fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(base).expect("redirect_uri");
    u.query_pairs_mut().extend_pairs(params);
    u.to_string()
}
