//! The publishers as Jenkins' are: archived artifacts (streamed from the agent, served one
//! by one, as a ZIP and through permalinks, gone with their build) and JUnit reports of
//! each common flavour (counts, UNSTABLE, Jenkins' testReport shape), read by
//! python-jenkins too.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use steward_tests::{Controller, Freestyle, http_request, pip_tool};

const NODE: &str = "n1";

fn setup() -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    let c = Controller::start();
    let (agent, work) = c.node_with_agent(NODE);
    (c, agent, work)
}

fn with_publishers(script: &str, publishers: &str) -> String {
    Freestyle::shell(script).xml().replace(
        "</project>",
        &format!("<publishers>{publishers}</publishers></project>"),
    )
}

fn archiver(artifacts: &str, extra: &str) -> String {
    format!(
        "<hudson.tasks.ArtifactArchiver><artifacts>{artifacts}</artifacts>{extra}</hudson.tasks.ArtifactArchiver>"
    )
}

fn get(c: &Controller, path: &str) -> steward_tests::HttpResponse {
    let auth = c.admin_basic_auth_header();
    http_request(&c.addr, "GET", path, &[auth.as_str()], b"")
}

/// The Python `scripts/test` installs python-jenkins into.
fn python() -> std::process::Command {
    pip_tool("python3", "python-jenkins==1.8.3")
}

#[test]
fn artifacts_are_archived_served_zipped_and_deleted_with_their_build() {
    let (c, _agent, _work) = setup();
    let script = "mkdir -p dist/sub && echo alpha > dist/a.txt && head -c 1048576 /dev/urandom > dist/sub/b.bin \
                  && echo skip > dist/c.tmp && echo other > other.log";
    let job = with_publishers(
        script,
        &archiver("dist/**", "<excludes>**/*.tmp</excludes>"),
    );
    let out = c.cli_with_stdin(&["create-job", "art"], &job);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("WARNING"), "{out:?}");
    assert_eq!(
        c.cli(&["build", "art", "-s"]).code,
        0,
        "{}",
        c.console("art", 1)
    );
    let console = c.console("art", 1);
    assert!(console.contains("Archiving artifacts\n"), "{console}");

    let build = get(&c, "/job/art/1/api/json").json();
    let paths: Vec<&str> = build["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["relativePath"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["dist/a.txt", "dist/sub/b.bin"], "{build}");
    assert_eq!(build["artifacts"][1]["fileName"], "b.bin");

    let workspace_b = std::fs::read(_work.path().join("workspace/art/dist/sub/b.bin")).unwrap();
    let served = get(&c, "/job/art/1/artifact/dist/sub/b.bin");
    assert_eq!(served.status, 200);
    assert_eq!(Sha256::digest(&served.body), Sha256::digest(&workspace_b));
    assert_eq!(
        get(&c, "/job/art/lastSuccessfulBuild/artifact/dist/a.txt").text(),
        "alpha\n"
    );
    assert_eq!(get(&c, "/job/art/1/artifact/dist/c.tmp").status, 404);
    assert_eq!(
        get(&c, "/job/art/1/artifact/../../../etc/passwd").status,
        404
    );

    // The ZIP, read by Python's zipfile (which checks every CRC).
    let zip = get(&c, "/job/art/1/artifact/*zip*/archive.zip");
    assert_eq!(zip.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("archive.zip");
    std::fs::write(&zip_path, &zip.body).unwrap();
    let listed = python()
        .arg("-c")
        .arg("import sys, zipfile, hashlib; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
              print('\\n'.join(f'{i.filename} {hashlib.sha256(z.read(i)).hexdigest()}' for i in z.infolist()))")
        .arg(&zip_path)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(
        listed,
        format!(
            "archive/dist/a.txt {}\narchive/dist/sub/b.bin {}\n",
            hex::encode(Sha256::digest(b"alpha\n")),
            hex::encode(Sha256::digest(&workspace_b))
        )
    );

    // python-jenkins reads them as it reads Jenkins'.
    let fetched = python()
        .arg("-c")
        .arg("import sys, jenkins; j = jenkins.Jenkins(sys.argv[1], username='admin', password=sys.argv[2]); \
              sys.stdout.write(j.get_build_artifact_as_bytes('art', 1, 'dist/a.txt').decode()); \
              print(j.get_build_info('art', 1)['artifacts'][0]['relativePath'])")
        .arg(&c.url)
        .arg(&c.token)
        .output()
        .unwrap();
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&fetched.stdout),
        "alpha\ndist/a.txt\n"
    );

    let archive: PathBuf = c.home().join("jobs/art/builds/1/archive");
    assert!(archive.join("dist/a.txt").exists());
    assert_eq!(c.cli(&["delete-builds", "art", "1"]).code, 0);
    assert!(!archive.exists(), "deleted with the build");
}

#[test]
fn empty_and_unsuccessful_archives_follow_the_flags() {
    let (c, _agent, _work) = setup();
    let job = with_publishers("echo nothing", &archiver("dist/*.jar", ""));
    assert_eq!(c.cli_with_stdin(&["create-job", "none"], &job).code, 0);
    assert_eq!(c.cli(&["build", "none", "-s"]).code, 2);
    assert!(
        c.console("none", 1).contains("ERROR: No artifacts found that match the file pattern \"dist/*.jar\". Configuration error?"),
        "{}",
        c.console("none", 1)
    );
    let job = with_publishers(
        "echo nothing",
        &archiver("dist/*.jar", "<allowEmptyArchive>true</allowEmptyArchive>"),
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "allowed"], &job).code, 0);
    assert_eq!(c.cli(&["build", "allowed", "-s"]).code, 0);
    let job = with_publishers(
        "mkdir -p dist && touch dist/x.jar && exit 1",
        &archiver("dist/*.jar", "<onlyIfSuccessful>true</onlyIfSuccessful>"),
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "failing"], &job).code, 0);
    assert_eq!(c.cli(&["build", "failing", "-s"]).code, 2);
    let console = c.console("failing", 1);
    assert!(
        console.contains("Skipped archiving because build is not successful"),
        "{console}"
    );
    assert_eq!(get(&c, "/job/failing/1/artifact/dist/x.jar").status, 404);
}

#[test]
fn a_gibibyte_artifact_is_archived_and_downloaded_intact() {
    let (c, _agent, work) = setup();
    let job = with_publishers(
        "mkdir -p out && head -c 1073741824 /dev/urandom > out/big.bin",
        &archiver("out/big.bin", ""),
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "big"], &job).code, 0);
    assert_eq!(
        c.cli(&["build", "big", "-s"]).code,
        0,
        "{}",
        c.console("big", 1)
    );
    let expected = sha256_file(&work.path().join("workspace/big/out/big.bin"));
    let archived = c.home().join("jobs/big/builds/1/archive/out/big.bin");
    assert_eq!(std::fs::metadata(&archived).unwrap().len(), 1 << 30);
    assert_eq!(sha256_file(&archived), expected);
    // Downloaded over HTTP, streamed: hashed as it arrives.
    let served = download_sha256(&c, "/job/big/1/artifact/out/big.bin");
    assert_eq!(served, (1 << 30, expected.clone()));
    let zipped = download_sha256(&c, "/job/big/1/artifact/*zip*/archive.zip");
    assert!(zipped.0 > 1 << 30, "the ZIP holds the file and its records");
}

fn sha256_file(path: &std::path::Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// GETs `path` with curl, hashing the body as it streams; `(bytes, sha256)`.
fn download_sha256(c: &Controller, path: &str) -> (u64, String) {
    let mut child = std::process::Command::new("curl")
        .args(["-sfS", "-u"])
        .arg(format!("admin:{}", &c.token))
        .arg(format!("{}{}", c.url.trim_end_matches('/'), path))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    let mut out = child.stdout.take().unwrap();
    let mut hasher = Sha256::new();
    let copied = std::io::copy(&mut out, &mut hasher).unwrap();
    assert!(child.wait().unwrap().success());
    (copied, hex::encode(hasher.finalize()))
}

fn junit(pattern: &str, extra: &str) -> String {
    format!(
        "<hudson.tasks.junit.JUnitResultArchiver plugin=\"junit@1265.v65b_14fa_f12f0\"><testResults>{pattern}</testResults>{extra}</hudson.tasks.junit.JUnitResultArchiver>"
    )
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/data/junit")
}

#[test]
fn junit_reports_of_each_flavour_are_counted_and_make_the_build_unstable() {
    let (c, _agent, _work) = setup();
    // (file, total, failed, skipped), from the sample reports.
    let flavours = [
        ("TEST-com.example.CalculatorTest.xml", 5, 2, 1),
        ("pytest.xml", 4, 1, 1),
        ("go-junit-report.xml", 4, 1, 1),
        ("jest-junit.xml", 4, 1, 1),
    ];
    for (index, (file, total, failed, skipped)) in flavours.iter().enumerate() {
        let job = format!("flavour{index}");
        let script = format!(
            "mkdir -p reports && cp '{}' reports/",
            samples().join(file).display()
        );
        let xml = with_publishers(&script, &junit("reports/*.xml", ""));
        assert_eq!(c.cli_with_stdin(&["create-job", &job], &xml).code, 0);
        assert_eq!(
            c.cli(&["build", &job, "-s"]).code,
            1,
            "UNSTABLE: {}",
            c.console(&job, 1)
        );
        let console = c.console(&job, 1);
        assert!(console.contains("Recording test results\n"), "{console}");
        assert!(console.ends_with("Finished: UNSTABLE\n"), "{console}");
        let report = get(&c, &format!("/job/{job}/1/testReport/api/json")).json();
        assert_eq!(report["_class"], "hudson.tasks.junit.TestResult");
        assert_eq!(report["failCount"], *failed, "{file}: {report}");
        assert_eq!(report["skipCount"], *skipped, "{file}");
        assert_eq!(report["passCount"], total - failed - skipped, "{file}");
        let builds = c.list_builds(&job);
        assert_eq!(
            builds[0].tests,
            format!("{total} tests, {failed} failed, {skipped} skipped")
        );
        let build = get(&c, &format!("/job/{job}/1/api/json")).json();
        let action = build["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["_class"] == "hudson.tasks.junit.TestResultAction")
            .unwrap_or_else(|| panic!("{build}"));
        assert_eq!(action["totalCount"], *total);
        let job_json = get(&c, &format!("/job/{job}/api/json")).json();
        assert_eq!(
            job_json["healthReport"][0]["description"],
            format!("Test Result: {failed} tests failing out of a total of {total} tests.")
        );
    }
    // A case as Jenkins shows it.
    let report = get(&c, "/job/flavour0/1/testReport/api/json").json();
    let cases = report["suites"][0]["cases"].as_array().unwrap();
    let failed = cases.iter().find(|k| k["status"] == "FAILED").unwrap();
    assert!(
        failed["errorDetails"]
            .as_str()
            .unwrap()
            .contains("expected"),
        "{failed}"
    );
    assert!(
        failed["errorStackTrace"].as_str().unwrap().contains("at "),
        "{failed}"
    );
    assert!(failed["duration"].is_number());

    // python-jenkins reads the report; a build without one reads as none.
    let read = python()
        .arg("-c")
        .arg("import sys, jenkins; j = jenkins.Jenkins(sys.argv[1], username='admin', password=sys.argv[2]); \
              r = j.get_build_test_report('flavour1', 1); print(r['failCount'], r['passCount'], r['skipCount'])")
        .arg(&c.url)
        .arg(&c.token)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&read.stdout), "1 2 1\n");
}

#[test]
fn missing_reports_fail_unless_allowed_and_skip_unstable_is_honoured() {
    let (c, _agent, _work) = setup();
    let xml = with_publishers("echo none", &junit("reports/*.xml", ""));
    assert_eq!(c.cli_with_stdin(&["create-job", "noreports"], &xml).code, 0);
    assert_eq!(c.cli(&["build", "noreports", "-s"]).code, 2);
    assert!(
        c.console("noreports", 1)
            .contains("No test report files were found. Configuration error?")
    );
    assert_eq!(get(&c, "/job/noreports/1/testReport/api/json").status, 404);
    let xml = with_publishers(
        "echo none",
        &junit(
            "reports/*.xml",
            "<allowEmptyResults>true</allowEmptyResults>",
        ),
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "allowed"], &xml).code, 0);
    assert_eq!(c.cli(&["build", "allowed", "-s"]).code, 0);
    let script = format!(
        "mkdir -p r && cp '{}' r/",
        samples().join("pytest.xml").display()
    );
    let xml = with_publishers(
        &script,
        &junit(
            "r/*.xml",
            "<skipMarkingBuildUnstable>true</skipMarkingBuildUnstable>",
        ),
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "stable"], &xml).code, 0);
    assert_eq!(c.cli(&["build", "stable", "-s"]).code, 0);
}
