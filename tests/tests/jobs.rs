//! Job configuration commands end to end, over both CLI transports: create, get, update,
//! copy, enable/disable, list and delete, with Jenkins' outputs and exit codes, unknown
//! elements kept, bad input refused with nothing stored, and the store surviving a restart.

use steward_tests::Controller;

const JOB_XML: &str = r#"<project>
  <description>unit tests</description>
  <assignedNode>linux &amp;&amp; !arm</assignedNode>
  <disabled>false</disabled>
  <concurrentBuild>false</concurrentBuild>
  <properties>
    <hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.StringParameterDefinition><name>BRANCH</name><defaultValue>main</defaultValue></hudson.model.StringParameterDefinition>
    </parameterDefinitions></hudson.model.ParametersDefinitionProperty>
    <com.example.SomePluginProperty><setting>kept</setting></com.example.SomePluginProperty>
  </properties>
  <builders>
    <hudson.tasks.Shell><command>make test</command></hudson.tasks.Shell>
  </builders>
  <publishers><com.example.Notifier><to>team@example.com</to></com.example.Notifier></publishers>
</project>"#;

#[test]
fn create_get_update_copy_delete_job_round_trip() {
    let c = Controller::start();
    for mode in ["-webSocket", "-http"] {
        let name = format!("job{mode}");
        let out = c.cli_with_stdin(&[mode, "create-job", &name], JOB_XML);
        assert_eq!(out.code, 0, "{out:?}");
        let got = c.cli(&[mode, "get-job", &name]);
        assert_eq!(got.code, 0, "{got:?}");
        assert!(
            got.stdout
                .starts_with("<?xml version='1.1' encoding='UTF-8'?>\n<project>"),
            "{}",
            got.stdout
        );
        for kept in [
            "<description>unit tests</description>",
            "<assignedNode>linux &amp;&amp; !arm</assignedNode>",
            "<name>BRANCH</name>",
            "<setting>kept</setting>",
            "<to>team@example.com</to>",
            "<command>make test</command>",
        ] {
            assert!(got.stdout.contains(kept), "{kept} missing:\n{}", got.stdout);
        }

        // What get-job prints, create-job takes back unchanged.
        let again = c.cli_with_stdin(&["create-job", "again"], &got.stdout);
        assert_eq!(again.code, 0, "{again:?}");
        assert_eq!(c.cli(&["get-job", "again"]).stdout, got.stdout);
        assert_eq!(c.cli(&["delete-job", "again"]).code, 0);

        let exists = c.cli_with_stdin(&[mode, "create-job", &name], JOB_XML);
        assert_eq!(
            (exists.code, exists.stderr.as_str()),
            (
                4,
                format!("\nERROR: Job '{name}' already exists\n").as_str()
            )
        );

        let updated = JOB_XML.replace("make test", "make check");
        let out = c.cli_with_stdin(&[mode, "update-job", &name], &updated);
        assert_eq!(out.code, 0, "{out:?}");
        let got = c.cli(&["get-job", &name]).stdout;
        assert!(got.contains("<command>make check</command>"), "{got}");

        let copy = format!("{name}-copy");
        assert_eq!(c.cli(&[mode, "copy-job", &name, &copy]).code, 0);
        assert_eq!(c.cli(&["get-job", &copy]).stdout, got);
        let taken = c.cli(&[mode, "copy-job", &name, &copy]);
        assert_eq!(
            (taken.code, taken.stderr.as_str()),
            (
                4,
                format!("\nERROR: Job '{copy}' already exists\n").as_str()
            )
        );
        // Jenkins suggests the nearest job it knows.
        let ghost = c.cli(&[mode, "copy-job", "ghost", "x"]);
        assert_eq!(ghost.code, 3, "{ghost:?}");
        assert!(
            ghost
                .stderr
                .starts_with("\nERROR: No such job 'ghost'; perhaps you meant '"),
            "{ghost:?}"
        );

        assert_eq!(c.cli(&[mode, "disable-job", &name]).code, 0);
        assert!(
            c.cli(&["get-job", &name])
                .stdout
                .contains("<disabled>true</disabled>")
        );
        assert_eq!(c.cli(&[mode, "enable-job", &name]).code, 0);
        assert!(
            c.cli(&["get-job", &name])
                .stdout
                .contains("<disabled>false</disabled>")
        );

        assert_eq!(c.cli(&[mode, "delete-job", &name, &copy]).code, 0);
        let gone = c.cli(&[mode, "get-job", &name]);
        assert_eq!(gone.code, 3, "{gone:?}");
        assert!(
            gone.stderr
                .starts_with(&format!("\nERROR: No such job '{name}'")),
            "{gone:?}"
        );
    }
}

#[test]
fn list_jobs_and_delete_errors() {
    let c = Controller::start();
    for name in ["b", "a", "c"] {
        assert_eq!(c.cli_with_stdin(&["create-job", name], JOB_XML).code, 0);
    }
    let list = c.cli(&["list-jobs"]);
    assert_eq!((list.code, list.stdout.as_str()), (0, "a\nb\nc\n"));
    assert_eq!(c.cli(&["list-jobs", "all"]).stdout, "a\nb\nc\n");
    let view = c.cli(&["list-jobs", "nightly"]);
    assert_eq!(view.code, 3, "{view:?}");

    let one = c.cli(&["delete-job", "ghost"]);
    assert_eq!(
        (one.code, one.stderr.as_str()),
        (3, "\nERROR: No such job 'ghost'\n")
    );
    let several = c.cli(&["delete-job", "a", "ghost", "b"]);
    assert_eq!(several.code, 5, "{several:?}");
    assert!(
        several.stderr.starts_with("ghost: No such job 'ghost'\n"),
        "{several:?}"
    );
    assert_eq!(c.cli(&["list-jobs"]).stdout, "c\n", "a and b were deleted");
}

#[test]
fn bad_job_input_is_refused_and_nothing_is_stored() {
    let c = Controller::start();
    let malformed = c.cli_with_stdin(&["create-job", "m"], "<project><description>x</project>");
    assert_eq!(malformed.code, 3, "{malformed:?}");
    assert!(
        malformed.stderr.contains("Invalid job XML"),
        "{malformed:?}"
    );
    let doctype = "<!DOCTYPE project [<!ENTITY x \"y\">]><project/>";
    assert_eq!(c.cli_with_stdin(&["create-job", "d"], doctype).code, 3);
    let bad_name = c.cli_with_stdin(&["create-job", "a/b"], JOB_XML);
    assert_eq!(bad_name.code, 3, "{bad_name:?}");
    assert!(bad_name.stderr.contains("unsafe character"), "{bad_name:?}");
    let missing = c.cli(&["create-job"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert_eq!(c.cli(&["list-jobs"]).stdout, "", "nothing was stored");

    // A bad update leaves the job as it was.
    assert_eq!(c.cli_with_stdin(&["create-job", "ok"], JOB_XML).code, 0);
    let before = c.cli(&["get-job", "ok"]).stdout;
    assert_eq!(c.cli_with_stdin(&["update-job", "ok"], "<project>").code, 3);
    assert_eq!(c.cli(&["get-job", "ok"]).stdout, before);
}

#[test]
fn jobs_need_permissions_and_survive_a_restart() {
    let mut c = Controller::start();
    let anonymous = c.cli_anonymous(&["list-jobs"]);
    assert_eq!(anonymous.code, 6, "{anonymous:?}");
    assert_eq!(c.cli_with_stdin(&["create-job", "kept"], JOB_XML).code, 0);
    let before = c.cli(&["get-job", "kept"]).stdout;
    c.kill_and_restart();
    assert_eq!(c.cli(&["get-job", "kept"]).stdout, before);
    assert_eq!(c.cli(&["list-jobs"]).stdout, "kept\n");
}
