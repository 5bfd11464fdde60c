//! The kit against the correct self-hosted function, on every store: every MUST check passes.
//! And the binary's three report formats, parsed.

mod common;

use std::sync::Arc;

use common::{small_limits, target};
use wkp1_conformance::{RunOptions, checks, run, select};
use wkp1_testkit::{self as testing, Backend, Server};

async fn every_must_check_passes(backend: Backend) {
    let server = Server::start_with(backend, small_limits).await;
    let report = run(
        target(&server),
        checks::all(),
        &RunOptions { concurrency: 6, ..RunOptions::default() },
    )
    .await;
    let failed = report.not_passed();
    assert!(
        failed.is_empty(),
        "against {}:\n{}\n\n{}",
        server.backend.name,
        failed.join("\n"),
        report.to_human()
    );
    assert!(report.conformant());
    assert_eq!(report.summary.passed, checks::all().len());
}

// Every backend but s3s-fs: it names a side file after the base64 of each key, so keys longer
// than about 150 bytes (the kit's subtree names make them) fail there with 500 after the object
// is stored. The self-hosted store tests and the end-to-end harness cover s3s-fs.
wkp1_testkit::for_every_backend!(@backend memory, wkp1_testkit::Backend::memory(); every_must_check_passes);
wkp1_testkit::for_every_backend!(@backend file, wkp1_testkit::Backend::file(); every_must_check_passes);
wkp1_testkit::for_every_backend!(@backend moto, wkp1_testkit::Backend::s3("moto"); every_must_check_passes);
wkp1_testkit::for_every_backend!(@minio every_must_check_passes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_selects_groups_and_ids_and_refuses_unknown_names() {
    let all = checks::all();
    let auth = select(checks::all(), &["auth".into()]).unwrap();
    assert!(!auth.is_empty() && auth.iter().all(|c| c.group == "auth"));
    let one = select(checks::all(), &["persist_gap_is_409".into()]).unwrap();
    assert_eq!(one.len(), 1);
    assert!(select(all, &["no_such_group".into()]).is_err());
}

#[test]
fn check_ids_are_unique_well_formed_and_cite_defined_requirements() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../protocol/SPEC.md"))
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for check in checks::all() {
        assert!(seen.insert(check.id), "duplicate id {}", check.id);
        assert!(check.id.starts_with(check.group), "{} is not named <group>_...", check.id);
        assert!(
            check.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
        assert!(!check.requirements.is_empty());
        for requirement in check.requirements {
            assert!(
                spec.contains(&format!("**[{requirement}]**")),
                "{} cites {requirement}, not in SPEC.md",
                check.id
            );
        }
    }
}

/// The binary, as an author runs it: exit codes and the three formats, each parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_parse_and_the_human_one_fits_100_columns() {
    let server = Arc::new(Server::start_with(Backend::memory().unwrap(), small_limits).await);
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, testing::secret().to_base64()).unwrap();
    let run_binary = |format: &'static str, out: Option<std::path::PathBuf>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wkp1-conformance"));
        command.args([
            "run",
            "--url",
            server.url.as_str(),
            "--key-id",
            testing::KEY_ID,
            "--format",
            format,
        ]);
        command.arg("--secret-file").arg(&secret_file);
        if let Some(out) = &out {
            command.arg("--out").arg(out);
        }
        command
    };

    let json_path = dir.path().join("report.json");
    let status = tokio::task::spawn_blocking({
        let mut command = run_binary("json", Some(json_path.clone()));
        move || command.status().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "a conformant function exits 0");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), checks::all().len());
    assert_eq!(json["summary"]["must_failed"], 0);
    let rotated = results.iter().find(|r| r["id"] == "auth_rotated_key_is_accepted").unwrap();
    assert_eq!(rotated["outcome"], "skip", "no second key was given");
    assert!(rotated["message"].as_str().unwrap().contains("--second-key-id"));
    for r in results {
        assert!(r["requirements"].as_array().is_some_and(|a| !a.is_empty()));
        assert!(matches!(r["level"].as_str(), Some("MUST" | "SHOULD")));
    }

    let junit = tokio::task::spawn_blocking({
        let mut command = run_binary("junit", None);
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    let xml = String::from_utf8(junit.stdout).unwrap();
    let document = roxmltree::Document::parse(&xml).expect("JUnit output is well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let cases: Vec<_> = root.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), checks::all().len());
    assert_eq!(root.descendants().filter(|n| n.has_tag_name("skipped")).count(), 1);
    assert_eq!(root.descendants().filter(|n| n.has_tag_name("failure")).count(), 0);

    let human = tokio::task::spawn_blocking({
        let mut command = run_binary("human", None);
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8(human.stdout).unwrap();
    let verdict = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let expected = format!(
        "{} passed, 0 failed (0 MUST, 0 SHOULD), 1 skipped: CONFORMANT",
        checks::all().len() - 1
    );
    assert_eq!(verdict, expected, "the human report's verdict:\n{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "line of {} columns: {line}", line.chars().count());
    }
}

#[test]
fn readme_lists_every_check_with_its_requirements() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for check in checks::all() {
        let row =
            format!("| `{}` | {} | {} |", check.id, check.level, check.requirements.join(", "));
        assert!(readme.contains(&row), "README.md lacks or misstates the row for {}", check.id);
    }
}

/// `wkp1-conformance vectors check` against the kit's own adapters agrees with every vector, and
/// catches an adapter that is subtly wrong (a signer whose hex comes out in upper case, a
/// verifier that accepts whatever it is given, a reader that stops at the header).
#[test]
fn vectors_check_passes_the_reference_adapters_and_catches_broken_ones() {
    let bin = env!("CARGO_BIN_EXE_wkp1-conformance");
    let check = |args: &[&str]| {
        let output = std::process::Command::new(bin)
            .arg("vectors")
            .arg("check")
            .args(args)
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let adapter = |kind: &str| format!("'{bin}' vectors adapter {kind}");
    let (sign, verify, segment) = (adapter("sign"), adapter("verify"), adapter("segment"));
    let (code, out) =
        check(&["--sign", &sign, "--verify", &verify, "--segment", &segment, "--decompresses"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 failed: AGREES WITH THE VECTORS"), "{out}");
    let signing: serde_json::Value = serde_json::from_str(wkp1_protocol::vectors::SIGNING).unwrap();
    let cases = signing["positive"].as_array().unwrap().len()
        + signing["negative"].as_array().unwrap().len();
    assert!(out.matches("PASS  verify/").count() == cases, "{out}");

    let upper =
        format!("{sign} | sed 's/\"signature\":\"\\([0-9a-f]*\\)\"/\"signature\":\"\\U\\1\"/'");
    let (code, out) = check(&["--sign", &upper]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  sign/restore_plan"), "{out}");
    let (code, out) = check(&["--verify", "cat >/dev/null; echo '{\"error\":null}'"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL  verify/stale_timestamp") && out.contains("PASS  verify/restore_plan"),
        "{out}"
    );
    let header_only = r#"cat >/dev/null; echo '{"error":"trailer_mismatch"}'"#;
    let (code, out) = check(&["--segment", header_only]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("PASS  segment/truncated_trailer") && out.contains("FAIL  segment/empty"),
        "{out}"
    );
    let (code, out) = check(&[]);
    assert_eq!(code, Some(2), "no program is a usage error: {out}");
}
