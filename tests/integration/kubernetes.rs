//! The Kubernetes manifests in `deploy/k8s/` against the configuration they
//! mount (issue 17, item 6). The ConfigMap's `gateway.toml` must be valid
//! for the gateway (checked by the binary's own loader, `--validate`, run
//! with exactly the environment the Deployment gives the container), and
//! the Deployment must agree with it: the ports it listens on, the probe
//! paths of the admin listener, every `*_env` variable, the config path, and
//! a stop sequence long enough for the drain (`src/drain.rs`). Services,
//! PodDisruptionBudget, HorizontalPodAutoscaler and ServiceMonitor must
//! select what the Deployment runs.
//!
//! Manifests are read with `serde_yaml_ng` (YAML 1.2; the maintained fork of
//! the deprecated `serde_yaml`) into `serde_json::Value`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_drio-gateway");

fn k8s_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s")
}

/// Every document of one YAML file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The manifests `kustomization.yaml` applies, by `Kind/name`.
fn manifests() -> BTreeMap<String, Value> {
    let kustomization = documents(&k8s_dir().join("kustomization.yaml")).remove(0);
    let mut out = BTreeMap::new();
    for file in kustomization["resources"].as_array().expect("resources") {
        for doc in documents(&k8s_dir().join(file.as_str().unwrap())) {
            let id = format!("{}/{}", s(&doc["kind"]), s(&doc["metadata"]["name"]));
            assert!(out.insert(id.clone(), doc).is_none(), "{id} twice");
        }
    }
    out
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

/// Whether `selector` (a `matchLabels` map) selects objects labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().expect("matchLabels");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A container port given by name or number, as a number.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(p) = port.as_u64() {
        return p;
    }
    let name = s(port);
    let ports = container["ports"].as_array().expect("container ports");
    let found = ports.iter().find(|p| p["name"] == name);
    n(&found.unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"])
}

/// Every value of a key ending in `_env`, anywhere in the TOML.
fn env_names(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                match v {
                    toml::Value::String(name) if k.ends_with("_env") => out.push(name.clone()),
                    _ => env_names(v, out),
                }
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|i| env_names(i, out)),
        _ => {}
    }
}

#[test]
fn every_manifest_file_is_applied_except_the_secret_example() {
    let kustomization = documents(&k8s_dir().join("kustomization.yaml")).remove(0);
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    for entry in std::fs::read_dir(k8s_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert_eq!(
                listed.contains(&name.as_str()),
                name != "secret.example.yaml",
                "{name}: kustomization.yaml must apply every manifest but the example Secret"
            );
        }
    }
}

#[test]
fn the_manifests_agree_with_the_configuration_they_mount() {
    let m = manifests();
    let get = |id: &str| m.get(id).unwrap_or_else(|| panic!("no {id} in deploy/k8s"));
    let deploy = get("Deployment/drio-gateway");
    let pod = &deploy["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert!(
        selects(&deploy["spec"]["selector"]["matchLabels"], pod_labels),
        "the Deployment selects its own pods"
    );
    assert!(n(&deploy["spec"]["replicas"]) >= 2, "2+ replicas");
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // The config file: --config names the file the ConfigMap is mounted as.
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(s).collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config");
    let config_path = Path::new(args[at + 1]);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| Path::new(s(&v["mountPath"])) == config_path.parent().unwrap())
        .expect("a volume mounted where --config points");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let cm = get(&format!("ConfigMap/{}", s(&volume["configMap"]["name"])));
    let item = volume["configMap"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| Path::new(s(&i["path"])) == Path::new(config_path.file_name().unwrap()))
        .expect("the ConfigMap item --config reads");
    let toml_text = s(&cm["data"][s(&item["key"])]);
    let config: toml::Value = toml::from_str(toml_text).expect("gateway.toml is TOML");

    // The environment: every variable the TOML names comes from the Secret.
    let env: Vec<&Value> = c["env"].as_array().unwrap().iter().collect();
    let env_of = |name: &str| env.iter().find(|e| e["name"] == name).copied();
    let mut wanted = Vec::new();
    env_names(&config, &mut wanted);
    if config.get("oauth").is_some() && config.get("secrets").is_none() {
        // The OAuth server does not start without the secrets key (default variable).
        wanted.push("DRIO_SECRETS_KEY".into());
    }
    assert!(wanted.len() >= 4, "env names in gateway.toml: {wanted:?}");
    let secret = documents(&k8s_dir().join("secret.example.yaml")).remove(0);
    for name in &wanted {
        let e = env_of(name)
            .unwrap_or_else(|| panic!("gateway.toml names {name}; the Deployment does not set it"));
        let r = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(
            r["name"], secret["metadata"]["name"],
            "{name} comes from the Secret"
        );
        assert!(
            secret["stringData"].get(s(&r["key"])).is_some(),
            "{name}: key {} is in secret.example.yaml",
            r["key"]
        );
    }

    // The gateway's own loader accepts the file with exactly that environment.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, toml_text).unwrap();
    let mut cmd = Command::new(BINARY);
    cmd.env_clear().arg("--config").arg(&file).arg("--validate");
    for e in &env {
        // 32 bytes in base64 fits every secret, the secrets key included.
        let value = match s(&e["name"]) {
            "REDIS_URL" => "redis://redis:6379",
            _ => "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        };
        cmd.env(s(&e["name"]), value);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "--validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Ports: what the gateway listens on is what the pod declares; on every
    // interface (a loopback listener is unreachable from the kubelet and Services).
    let listen = |key: &str| -> SocketAddr {
        let addr = config["listen"][key].as_str().unwrap().parse().unwrap();
        assert!(
            !SocketAddr::ip(&addr).is_loopback(),
            "listen.{key} {addr} is loopback"
        );
        addr
    };
    let (proxy, admin) = (listen("proxy"), listen("admin"));
    assert_eq!(
        container_port(c, &"http".into()),
        u64::from(proxy.port()),
        "http = listen.proxy"
    );
    assert_eq!(
        container_port(c, &"admin".into()),
        u64::from(admin.port()),
        "admin = listen.admin"
    );

    // Probes: the admin listener's /healthz (liveness, startup) and /readyz (readiness).
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(
            container_port(c, &get["port"]),
            u64::from(admin.port()),
            "{probe} port"
        );
    }

    // Hardening.
    let sc = &c["securityContext"];
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());

    // Stopping: preStop sleep, then SIGTERM's drain (grace_period_seconds:
    // still accepting, /readyz 503), then in-flight requests get
    // graceful_shutdown_timeout_seconds; Kubernetes must not SIGKILL before.
    let server = &config["server"];
    let grace = server["grace_period_seconds"].as_integer().unwrap_or(5) as u64;
    let shutdown = server["graceful_shutdown_timeout_seconds"]
        .as_integer()
        .unwrap_or(5) as u64;
    let pre_stop: Vec<&str> = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("preStop exec")
        .iter()
        .map(s)
        .collect();
    assert_eq!(pre_stop[0], "sleep");
    let sleep: u64 = pre_stop[1].parse().unwrap();
    let termination = n(&pod["spec"]["terminationGracePeriodSeconds"]);
    assert!(
        termination > sleep + grace + shutdown,
        "terminationGracePeriodSeconds {termination} <= preStop {sleep} + drain {grace} + in-flight {shutdown}"
    );
    // The readiness probe sees the drain's 503 while the gateway still accepts.
    let ready = &c["readinessProbe"];
    let notices = n(&ready["periodSeconds"]) * n(&ready["failureThreshold"]);
    assert!(
        notices < grace,
        "readiness notices the drain after {notices}s; drain lasts {grace}s"
    );

    // Services send to the pods' named ports.
    let svc = get("Service/drio-gateway");
    let metrics_svc = get("Service/drio-gateway-metrics");
    for (svc, port) in [(svc, proxy.port()), (metrics_svc, admin.port())] {
        assert!(selects(&svc["spec"]["selector"], pod_labels), "{svc}");
        let ports = svc["spec"]["ports"].as_array().unwrap();
        assert_eq!(
            ports.len(),
            1,
            "one port per Service (the admin listener stays apart)"
        );
        assert_eq!(container_port(c, &ports[0]["targetPort"]), u64::from(port));
    }

    // Disruptions and autoscaling keep one replica serving.
    let pdb = get("PodDisruptionBudget/drio-gateway");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels));
    assert!(n(&pdb["spec"]["maxUnavailable"]) < n(&deploy["spec"]["replicas"]));
    let hpa = get("HorizontalPodAutoscaler/drio-gateway");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deploy["metadata"]["name"]
    );
    assert!(n(&hpa["spec"]["minReplicas"]) >= 2);

    // The ServiceMonitor scrapes the admin listener as the job the alert rules watch.
    let sm = get("ServiceMonitor/drio-gateway");
    assert!(selects(
        &sm["spec"]["selector"]["matchLabels"],
        &metrics_svc["metadata"]["labels"]
    ));
    assert!(!selects(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], metrics_svc["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    let job = &metrics_svc["metadata"]["labels"][s(&sm["spec"]["jobLabel"])];
    let alerts = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml"),
    )
    .unwrap();
    assert!(
        alerts.contains(&format!("up{{job=\"{}\"}}", s(job))),
        "alerts.yml watches job {job}"
    );
}
