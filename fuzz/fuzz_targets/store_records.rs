//! Store records (JSON values under the keys in `store`, `catalog`, `oauth`,
//! `credentials`): arbitrary bytes decoded into every stored type, as a
//! gateway reading a corrupt, old or tampered record would; a decoded app
//! record goes through `to_app_config` like at a route rebuild.
#![no_main]

use drio_gateway::api::connect;
use drio_gateway::auth::Principal;
use drio_gateway::catalog::{live, AppRecord, Connection, ConnectionSecrets};
use drio_gateway::credentials::per_user::{ConnectTicket, UserTokens};
use drio_gateway::oauth::{authorize::Pending, callback::CodeGrant, clients::Client};
use drio_gateway::oauth::{consent::Asked, sessions::Session, signing::StoredKeys};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn decode<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

fuzz_target!(|data: &[u8]| {
    if let Some(rec) = decode::<AppRecord>(data) {
        if let Ok(app) = live::to_app_config(&rec) {
            let _ = app.resource_url("http://127.0.0.1:8080");
        }
    }
    if let Some(conns) = decode::<Vec<Connection>>(data) {
        let _ = live::default_connection(&conns);
    }
    let _ = decode::<Connection>(data);
    let _ = decode::<ConnectionSecrets>(data);
    let _ = decode::<Session>(data);
    let _ = decode::<Pending>(data);
    let _ = decode::<CodeGrant>(data);
    let _ = decode::<Principal>(data);
    let _ = decode::<Client>(data);
    let _ = decode::<UserTokens>(data);
    let _ = decode::<ConnectTicket>(data);
    let _ = decode::<Asked>(data);
    let _ = decode::<StoredKeys>(data);
    let _ = decode::<connect::Pending>(data);
    let _ = decode::<connect::Confirm>(data);
});
