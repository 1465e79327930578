//! The app's commands on Tauri's mock runtime (a real AppState, embedded
//! server and journal in a temp folder; no window system), the bindings
//! kept current, and the one command list checked against the capability
//! file and the generated permissions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context};

use crate::Launch;

macro_rules! names {
    ($($command:ident $([$generic:path])?),* $(,)?) => {
        &[$(stringify!($command)),*]
    };
}

const COMMANDS: &[&str] = crate::app_commands!(names);

struct TestApp {
    _app: tauri::App<MockRuntime>,
    window: tauri::WebviewWindow<MockRuntime>,
    _dir: tempfile::TempDir,
}

fn app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch {
        data: dir.path().to_owned(),
        isolated: true,
        answerer: None,
        desktop: false,
    };
    let mut app = crate::build(mock_builder(), launch)
        .build(mock_context(tauri::test::noop_assets()))
        .unwrap();
    // Tauri runs the setup hook (state, background work) once the event
    // loop is ready: one iteration (deprecated only as a busy loop).
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    TestApp {
        _app: app,
        window,
        _dir: dir,
    }
}

impl TestApp {
    /// Invokes `cmd` as the window would; the answer or the error, as JSON.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.window,
            tauri::webview::InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: tauri::ipc::InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|b| b.deserialize::<Value>().unwrap())
    }

    fn code_of(&self, cmd: &str, args: Value) -> String {
        let e = self.invoke(cmd, args).expect_err(cmd);
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        e["code"].as_str().unwrap().to_owned()
    }
}

#[test]
fn commands_answer_on_the_mock_runtime() {
    let app = app();
    // The embedded server started in-process; the settings say where it is.
    let view = app.invoke("get_settings", json!({})).unwrap();
    assert_eq!(view["settings"]["destination"], "embedded");
    let url = view["embedded_url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(view["secret_storage"], "none");
    assert_eq!(app.invoke("list_history", json!({})).unwrap(), json!([]));
    assert_eq!(app.invoke("take_notices", json!({})).unwrap(), json!([]));
}

#[test]
fn errors_carry_typed_codes() {
    let app = app();
    assert_eq!(
        app.code_of("stop_recording", json!({})),
        "ERR_NOT_RECORDING"
    );
    assert_eq!(app.code_of("toggle_pause", json!({})), "ERR_NOT_RECORDING");
    assert_eq!(app.code_of("toggle_mute", json!({})), "ERR_NOT_RECORDING");
    assert_eq!(
        app.code_of("resume_upload", json!({"uploadId": "nope"})),
        "ERR_RECORDING_NOT_FOUND"
    );
    assert_eq!(
        app.code_of(
            "rename_recording",
            json!({"uploadId": "nope", "title": "x"})
        ),
        "ERR_RECORDING_NOT_FOUND"
    );
    assert_eq!(
        app.code_of(
            "rename_recording",
            json!({"uploadId": "nope", "title": "  "})
        ),
        "ERR_INVALID_SETTINGS"
    );
    // A remote server without a valid URL is refused, and nothing is saved.
    let mut settings = app.invoke("get_settings", json!({})).unwrap()["settings"].clone();
    settings["destination"] = json!("remote");
    settings["server_url"] = json!("ftp://nowhere");
    settings["token_id"] = json!("t");
    assert_eq!(
        app.code_of(
            "save_settings",
            json!({"settings": {"settings": settings, "token_secret": "s"}})
        ),
        "ERR_INVALID_SETTINGS"
    );
    let view = app.invoke("get_settings", json!({})).unwrap();
    assert_eq!(view["settings"]["destination"], "embedded");
}

/// Each error the app returns is one of the one list's codes, as its wire string.
#[test]
fn every_code_is_in_the_one_list() {
    for &code in spool_proto::ErrorCode::ALL {
        let wire = serde_json::to_value(code).unwrap();
        assert_eq!(wire, code.as_str());
    }
    let bindings = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/bindings.ts"),
    )
    .unwrap();
    for &code in spool_proto::ErrorCode::ALL {
        assert!(
            bindings.contains(&format!("\"{}\"", code.as_str())),
            "{code} missing from the bindings"
        );
    }
}

/// The committed bindings are what these types generate; a stale file is
/// rewritten and the test fails so the change gets committed.
#[test]
fn bindings_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = root.join("ui/src/bindings.ts");
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("bindings.ts");
    crate::commands::builder::<MockRuntime>()
        .export(specta_typescript::Typescript::default(), &fresh)
        .unwrap();
    let fresh = std::fs::read_to_string(&fresh).unwrap();
    let old = std::fs::read_to_string(&committed).unwrap_or_default();
    if old != fresh {
        std::fs::write(&committed, &fresh).unwrap();
        panic!(
            "ui/src/bindings.ts was stale and has been regenerated: rebuild the UI and commit it"
        );
    }
}

/// The capability file grants exactly the commands of the one list, and the
/// committed generated permissions are exactly theirs (none left over from
/// a removed command).
#[test]
fn the_command_list_is_the_only_one() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut listed: Vec<String> = COMMANDS.iter().map(|c| c.to_string()).collect();
    listed.sort();
    let mut unique = listed.clone();
    unique.dedup();
    assert_eq!(unique, listed, "a command is listed twice");

    let cap: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("src-tauri/capabilities/main.json")).unwrap(),
    )
    .unwrap();
    let mut granted: Vec<String> = cap["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .filter(|p| !p.starts_with("core:"))
        .map(|p| {
            p.strip_prefix("allow-")
                .unwrap_or_else(|| panic!("{p}: only allow- permissions are granted"))
                .replace('-', "_")
        })
        .collect();
    granted.sort();
    assert_eq!(
        granted, listed,
        "capabilities/main.json differs from command_list.rs"
    );

    let mut generated: Vec<String> = std::fs::read_dir(root.join("permissions/autogenerated"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    assert_eq!(
        generated, listed,
        "permissions/autogenerated differs from command_list.rs: delete the stale files"
    );

    // Every listed command is registered (its binding exists).
    let bindings = std::fs::read_to_string(root.join("ui/src/bindings.ts")).unwrap();
    for c in COMMANDS {
        assert!(
            bindings.contains(&format!("(\"{c}\"")),
            "{c} is listed but not in the bindings"
        );
    }
}

/// The app's modules depend only downward: no import cycle (a module's
/// dependencies are the `crate::` paths in its code, comments left out).
#[test]
fn the_module_graph_has_no_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src-tauri/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // The crate root and the test module sit above everything.
        if path.extension().is_none_or(|e| e != "rs")
            || ["lib", "main", "tests"].contains(&name.as_str())
        {
            continue;
        }
        let code = std::fs::read_to_string(&path).unwrap();
        let deps = graph.entry(name.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if dir.join(format!("{module}.rs")).is_file() && module != name {
                    deps.insert(module);
                }
            }
        }
    }
    // Depth-first search; a module met again on the current path is a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m.to_owned());
        for d in graph.get(m).into_iter().flatten() {
            visit(d, graph, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    assert!(graph.len() > 10, "{graph:?}");
}
