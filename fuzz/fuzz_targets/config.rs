//! The config loader: arbitrary text through TOML parsing and validation
//! (`Config::from_toml`), which must answer with a `ConfigError`, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = drio_gateway::config::Config::from_toml(Path::new("fuzz.toml"), text) {
        // What start-up derives from a valid config.
        for app in &cfg.apps {
            let _ = app.resource_url(&cfg.public_url);
        }
    }
});
