use proptest::prelude::*;

use super::*;

/// The job of compat §7.4, as users write it.
const COMPAT_JOB: &str = r#"<project>
  <description>unit tests</description>
  <assignedNode>linux &amp;&amp; !arm</assignedNode>
  <disabled>false</disabled>
  <concurrentBuild>false</concurrentBuild>
  <properties>
    <hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.StringParameterDefinition><name>BRANCH</name><defaultValue>main</defaultValue></hudson.model.StringParameterDefinition>
    </parameterDefinitions></hudson.model.ParametersDefinitionProperty>
  </properties>
  <builders>
    <hudson.tasks.Shell><command>make test</command></hudson.tasks.Shell>
  </builders>
</project>"#;

/// A job as Jenkins 2.4xx writes it, with a plugin's property and step, every parameter
/// kind and the unknown children Jenkins adds. It is already in Steward's layout, so
/// `to_xml` must give it back byte for byte.
const JENKINS_JOB: &str = r#"<project plugin="freestyle@1.0">
  <actions/>
  <description>nightly &lt;b&gt;build&lt;/b&gt;</description>
  <keepDependencies>false</keepDependencies>
  <properties>
    <jenkins.model.BuildDiscarderProperty>
      <strategy class="hudson.tasks.LogRotator">
        <daysToKeep>-1</daysToKeep>
        <numToKeep>10</numToKeep>
      </strategy>
    </jenkins.model.BuildDiscarderProperty>
    <com.coravy.hudson.plugins.github.GithubProjectProperty plugin="github@1.37.3">
      <projectUrl>https://github.com/example/app/</projectUrl>
    </com.coravy.hudson.plugins.github.GithubProjectProperty>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>BRANCH</name>
          <description>branch to build</description>
          <defaultValue>main</defaultValue>
          <trim>true</trim>
        </hudson.model.StringParameterDefinition>
        <hudson.model.BooleanParameterDefinition>
          <name>DEBUG</name>
          <description/>
          <defaultValue>false</defaultValue>
        </hudson.model.BooleanParameterDefinition>
        <hudson.model.ChoiceParameterDefinition>
          <name>TARGET</name>
          <description/>
          <choices class="java.util.Arrays$ArrayList">
            <a class="string-array">
              <string>dev</string>
              <string>prod</string>
            </a>
          </choices>
        </hudson.model.ChoiceParameterDefinition>
        <hudson.model.PasswordParameterDefinition>
          <name>TOKEN</name>
          <description/>
          <defaultValue>{AQAAABAAAAAQ3v7Kq2E=}</defaultValue>
        </hudson.model.PasswordParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <scm class="hudson.scm.NullSCM"/>
  <assignedNode>linux</assignedNode>
  <canRoam>false</canRoam>
  <disabled>false</disabled>
  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>
  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>
  <triggers/>
  <concurrentBuild>true</concurrentBuild>
  <builders>
    <hudson.tasks.Shell>
      <command>make
make test</command>
      <configuredLocalRules/>
      <unstableReturn>3</unstableReturn>
    </hudson.tasks.Shell>
    <hudson.tasks.Maven>
      <targets>clean install</targets>
    </hudson.tasks.Maven>
  </builders>
  <publishers/>
  <buildWrappers/>
</project>
"#;

fn job(xml: &str) -> JobConfig {
    JobConfig::from_xml(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

fn error(xml: &str) -> String {
    JobConfig::from_xml(xml).unwrap_err().to_string()
}

/// `to_xml` then `from_xml` gives the same config.
fn assert_round_trips(config: &JobConfig) {
    let written = config.to_xml();
    let again = JobConfig::from_xml(&written).unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(&again, config, "{written}");
    assert_eq!(again.to_xml(), written, "a second write changed the job");
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn reads_the_compat_example() {
    let config = job(COMPAT_JOB);
    assert_eq!(config.description, "unit tests");
    assert_eq!(config.assigned_node.as_deref(), Some("linux && !arm"));
    assert!(!config.disabled && !config.concurrent_build);
    assert_eq!(config.parameter_defaults(), pairs(&[("BRANCH", "main")]));
    assert_eq!(config.builders, [Builder::Shell(Shell::new("make test"))]);
    assert!(config.ignored().is_empty());
    assert_round_trips(&config);
}

#[test]
fn writes_the_compat_example_as_jenkins_does() {
    // Only `<canRoam>` is added (Jenkins writes it next to `<assignedNode>`), and the
    // parameter definition's `<description/>` and `<trim>`.
    insta::assert_snapshot!(job(COMPAT_JOB).to_xml(), @r#"
    <project>
      <description>unit tests</description>
      <assignedNode>linux &amp;&amp; !arm</assignedNode>
      <canRoam>false</canRoam>
      <disabled>false</disabled>
      <concurrentBuild>false</concurrentBuild>
      <properties>
        <hudson.model.ParametersDefinitionProperty>
          <parameterDefinitions>
            <hudson.model.StringParameterDefinition>
              <name>BRANCH</name>
              <description/>
              <defaultValue>main</defaultValue>
              <trim>false</trim>
            </hudson.model.StringParameterDefinition>
          </parameterDefinitions>
        </hudson.model.ParametersDefinitionProperty>
      </properties>
      <builders>
        <hudson.tasks.Shell>
          <command>make test</command>
        </hudson.tasks.Shell>
      </builders>
    </project>
    "#);
}

#[test]
fn a_job_written_by_jenkins_comes_back_as_it_was() {
    let config = job(&format!(
        "{}\n{JENKINS_JOB}",
        crate::node_xml::XML_DECLARATION
    ));
    assert_eq!(config.to_xml(), JENKINS_JOB);
    assert_round_trips(&config);

    assert_eq!(config.description, "nightly <b>build</b>");
    assert_eq!(config.assigned_node.as_deref(), Some("linux"));
    assert!(config.concurrent_build);
    assert_eq!(
        config.root_attributes(),
        pairs(&[("plugin", "freestyle@1.0")])
    );
    let kept: Vec<&str> = config.other_elements().map(|e| e.name.as_str()).collect();
    assert_eq!(
        kept,
        [
            "actions",
            "keepDependencies",
            "scm",
            "blockBuildWhenDownstreamBuilding",
            "blockBuildWhenUpstreamBuilding",
            "triggers",
            "publishers",
            "buildWrappers"
        ]
    );
    assert_eq!(config.other_properties().len(), 2);
    let Builder::Shell(shell) = &config.builders[0] else {
        panic!("{:?}", config.builders[0]);
    };
    assert_eq!(shell.command, "make\nmake test");
    let ignored = config.ignored();
    let steps: Vec<&str> = ignored
        .iter()
        .filter(|i| i.section == "builders")
        .map(|i| i.element.as_str())
        .collect();
    assert_eq!(steps, ["hudson.tasks.Maven"]);
}

#[test]
fn every_parameter_kind_is_read() {
    let config = job(JENKINS_JOB);
    let [string, boolean, choice, other] = &config.parameters[..] else {
        panic!("{:?}", config.parameters);
    };
    let ParameterDefinition::String(string) = string else {
        panic!("{string:?}")
    };
    assert_eq!(
        (string.name.as_str(), string.description.as_str()),
        ("BRANCH", "branch to build")
    );
    assert_eq!((string.default_value.as_str(), string.trim), ("main", true));
    assert_eq!(
        boolean,
        &ParameterDefinition::Boolean(BooleanParameter::new("DEBUG", false))
    );
    let ParameterDefinition::Choice(choice) = choice else {
        panic!("{choice:?}")
    };
    assert_eq!(choice.choices, ["dev", "prod"]);
    let ParameterDefinition::Other(password) = other else {
        panic!("{other:?}")
    };
    assert_eq!(password.class(), "hudson.model.PasswordParameterDefinition");
    assert_eq!(other.name(), "TOKEN");
    assert_eq!(password.default_value(), Some("{AQAAABAAAAAQ3v7Kq2E=}"));
    assert_eq!(
        config.parameter_defaults(),
        pairs(&[
            ("BRANCH", "main"),
            ("DEBUG", "false"),
            ("TARGET", "dev"),
            ("TOKEN", "{AQAAABAAAAAQ3v7Kq2E=}")
        ])
    );
}

fn with_parameters(definitions: &str) -> String {
    format!(
        "<project><properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>{definitions}</parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties></project>"
    )
}

#[test]
fn choices_are_read_in_every_form_and_written_as_a_list() {
    let forms = [
        r#"<choices class="java.util.Arrays$ArrayList"><a class="string-array"><string>dev</string><string>prod</string></a></choices>"#,
        "<choices>dev\nprod</choices>",
        "<choices>\n      dev\r\n\n      prod\n    </choices>",
        r#"<choices class="java.util.ArrayList"><string>dev</string><string>prod</string></choices>"#,
    ];
    for form in forms {
        let xml = with_parameters(&format!(
            "<hudson.model.ChoiceParameterDefinition><name>ENV</name>{form}</hudson.model.ChoiceParameterDefinition>"
        ));
        let config = job(&xml);
        let expected = ChoiceParameter::new("ENV", vec!["dev".into(), "prod".into()]);
        assert_eq!(
            config.parameters,
            [ParameterDefinition::Choice(expected)],
            "{form}"
        );
        let written = config.to_xml();
        let list = r#"<choices class="java.util.Arrays$ArrayList">
            <a class="string-array">
              <string>dev</string>
              <string>prod</string>
            </a>
          </choices>"#;
        assert!(written.contains(list), "{written}");
        assert_round_trips(&config);
    }
    // In the list form, a choice is taken as written: an empty first choice is a common
    // "none" default.
    let xml = with_parameters(
        "<hudson.model.ChoiceParameterDefinition><name>X</name><choices><a><string/><string> b </string></a></choices></hudson.model.ChoiceParameterDefinition>",
    );
    assert_eq!(job(&xml).parameter_defaults(), pairs(&[("X", "")]));
    assert_eq!(
        job(&xml).resolve_parameters(&pairs(&[("X", " b ")])),
        Ok(pairs(&[("X", " b ")]))
    );
}

#[test]
fn unknown_children_of_known_elements_stay_in_place() {
    let xml = with_parameters(
        "<hudson.model.StringParameterDefinition><x.First/><name>A</name><x.Middle>1</x.Middle><defaultValue> v </defaultValue></hudson.model.StringParameterDefinition>",
    )
    .replace(
        "</properties>",
        "<x.Property/></properties><builders><hudson.tasks.Shell a=\"1\"><x.Before/><command>true</command></hudson.tasks.Shell></builders>",
    );
    let config = job(&xml);
    let written = config.to_xml();
    let order = [
        "<x.Property/>",
        "<hudson.model.ParametersDefinitionProperty>",
        "<x.First/>",
        "<name>A</name>",
        "<x.Middle>1</x.Middle>",
        "<description/>\n          <defaultValue> v </defaultValue>",
        "<hudson.tasks.Shell a=\"1\">",
        "<x.Before/>",
        "<command>true</command>",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|s| {
            written
                .find(s)
                .unwrap_or_else(|| panic!("{s} in {written}"))
        })
        .collect();
    assert!(at.is_sorted(), "{written}");
    assert_round_trips(&config);
}

#[test]
fn missing_fields_go_where_jenkins_writes_them() {
    let config = job(
        "<project><actions/><x.Unknown/><builders><hudson.tasks.Shell/></builders><publishers/></project>",
    );
    insta::assert_snapshot!(config.to_xml(), @r#"
    <project>
      <actions/>
      <x.Unknown/>
      <description/>
      <properties/>
      <canRoam>true</canRoam>
      <disabled>false</disabled>
      <concurrentBuild>false</concurrentBuild>
      <builders>
        <hudson.tasks.Shell>
          <command/>
        </hudson.tasks.Shell>
      </builders>
      <publishers/>
    </project>
    "#);
    assert_round_trips(&config);
    assert_round_trips(&job("<project/>"));
    assert_eq!(job("<project/>"), JobConfig::new());
}

#[test]
fn the_label_expression_decides_where_a_job_runs() {
    // Jenkins would ignore the label of a roaming job; it never writes one, and Steward goes
    // by the label.
    let config =
        job("<project><canRoam>true</canRoam><assignedNode> linux </assignedNode></project>");
    assert_eq!(config.assigned_node.as_deref(), Some("linux"));
    assert!(
        config
            .to_xml()
            .contains("<assignedNode>linux</assignedNode>\n  <canRoam>false</canRoam>")
    );
    assert_round_trips(&config);
    for blank in ["<assignedNode/>", "<assignedNode> </assignedNode>", ""] {
        let config = job(&format!("<project>{blank}</project>"));
        assert_eq!(config.assigned_node, None);
        assert!(config.to_xml().contains("<canRoam>true</canRoam>"));
    }
}

#[test]
fn booleans_read_as_xstream_reads_them() {
    let config = job(
        "<project><disabled>TRUE</disabled><concurrentBuild/><canRoam>False</canRoam></project>",
    );
    assert!(config.disabled && !config.concurrent_build);
}

#[test]
fn freestyle_class_root_is_written_as_project() {
    let config = job(
        "<hudson.model.FreeStyleProject><disabled>true</disabled></hudson.model.FreeStyleProject>",
    );
    assert!(config.disabled);
    assert!(config.to_xml().starts_with("<project>\n"));
}

#[test]
fn other_kinds_of_job_are_refused() {
    assert_eq!(
        error("<flow-definition plugin=\"workflow-job@1400\"><definition/></flow-definition>"),
        "Steward runs freestyle jobs (<project>); this is <flow-definition>"
    );
    assert_eq!(
        error("<maven2-moduleset/>"),
        "Steward runs freestyle jobs (<project>); this is <maven2-moduleset>"
    );
}

#[test]
fn bad_values_name_the_element_and_the_value() {
    let parameter = |definition: &str| error(&with_parameters(definition));
    let cases = [
        (
            parameter(
                "<hudson.model.BooleanParameterDefinition><name>DEBUG</name><defaultValue>yes</defaultValue></hudson.model.BooleanParameterDefinition>",
            ),
            "invalid value \"yes\" in <defaultValue>: expected true or false",
        ),
        (
            parameter(
                "<hudson.model.StringParameterDefinition><name>A</name><trim>1</trim></hudson.model.StringParameterDefinition>",
            ),
            "invalid value \"1\" in <trim>: expected true or false",
        ),
        (
            parameter(
                "<hudson.model.StringParameterDefinition><name>A</name></hudson.model.StringParameterDefinition><hudson.model.PasswordParameterDefinition><name>A</name></hudson.model.PasswordParameterDefinition>",
            ),
            "invalid value \"A\" in <name>: two parameters have this name",
        ),
        (
            parameter(
                "<hudson.model.StringParameterDefinition><name> </name></hudson.model.StringParameterDefinition>",
            ),
            "invalid value \"\" in <name>: every parameter needs a name; this hudson.model.StringParameterDefinition has none",
        ),
        (
            parameter("<x.NamelessParameterDefinition/>"),
            "invalid value \"\" in <name>: every parameter needs a name; this x.NamelessParameterDefinition has none",
        ),
        (
            parameter(
                "<hudson.model.StringParameterDefinition><name>A=B</name></hudson.model.StringParameterDefinition>",
            ),
            "invalid value \"A=B\" in <name>: a parameter name is an environment variable's and cannot hold '='",
        ),
        (
            parameter(
                "<hudson.model.ChoiceParameterDefinition><name>ENV</name><choices> </choices></hudson.model.ChoiceParameterDefinition>",
            ),
            "invalid value \"\" in <choices>: choice parameter ‘ENV’ needs at least one choice",
        ),
        (
            parameter(
                "<hudson.model.ChoiceParameterDefinition><name>ENV</name><choices><a><int>1</int></a></choices></hudson.model.ChoiceParameterDefinition>",
            ),
            "invalid value \"int\" in <choices>: expected <string> elements, or one choice a line",
        ),
        (
            parameter(
                "<hudson.model.StringParameterDefinition><name>A</name><name>B</name></hudson.model.StringParameterDefinition>",
            ),
            "<name> appears more than once in <hudson.model.StringParameterDefinition>",
        ),
        (
            error("<project><disabled>no</disabled></project>"),
            "invalid value \"no\" in <disabled>: expected true or false",
        ),
        (
            error("<project><canRoam>1</canRoam></project>"),
            "invalid value \"1\" in <canRoam>: expected true or false",
        ),
        (
            error("<project><builders/><builders/></project>"),
            "<builders> appears more than once in <project>",
        ),
        (
            error(
                "<project><assignedNode>a</assignedNode><assignedNode>b</assignedNode></project>",
            ),
            "<assignedNode> appears more than once in <project>",
        ),
        (
            error(
                "<project><properties><hudson.model.ParametersDefinitionProperty/><hudson.model.ParametersDefinitionProperty/></properties></project>",
            ),
            "<hudson.model.ParametersDefinitionProperty> appears more than once in <properties>",
        ),
        (
            error("<project><description>"),
            "malformed XML at byte 22: unclosed element <description>",
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}

#[test]
fn build_parameters_are_resolved_as_jenkins_build_does() {
    let config = job(JENKINS_JOB);
    let resolve = |given: &[(&str, &str)]| config.resolve_parameters(&pairs(given));
    assert_eq!(resolve(&[]), Ok(config.parameter_defaults()));
    assert_eq!(
        resolve(&[
            ("TARGET", "prod"),
            ("BRANCH", "  feature  "),
            ("DEBUG", "True"),
            ("TARGET", "dev"),
            ("TOKEN", "s3cret"),
        ]),
        Ok(pairs(&[
            ("BRANCH", "feature"),
            ("DEBUG", "true"),
            ("TARGET", "dev"),
            ("TOKEN", "s3cret")
        ]))
    );
    let message = |given: &[(&str, &str)]| resolve(given).unwrap_err().to_string();
    assert_eq!(
        message(&[("BRNCH", "x")]),
        "'BRNCH' is not a valid parameter. Did you mean BRANCH?"
    );
    assert_eq!(
        message(&[("TARGET", "staging")]),
        "‘staging’ is not a choice of parameter ‘TARGET’; the choices are ‘dev’, ‘prod’"
    );
    // Booleans as Java's Boolean.parseBoolean reads them.
    let debug = |value: &str| resolve(&[("DEBUG", value)]).unwrap()[1].1.clone();
    assert_eq!(
        [debug("yes"), debug("TRUE"), debug("1"), debug("")],
        ["false", "true", "false", "false"]
    );
    assert_eq!(
        job("<project/>")
            .resolve_parameters(&pairs(&[("A", "1")]))
            .unwrap_err()
            .to_string(),
        "'A' is not a valid parameter."
    );
    // Without `trim`, a string is taken as given.
    let untrimmed = job(&with_parameters(
        "<hudson.model.StringParameterDefinition><name>A</name><defaultValue> d </defaultValue></hudson.model.StringParameterDefinition>",
    ));
    assert_eq!(untrimmed.parameter_defaults(), pairs(&[("A", " d ")]));
    assert_eq!(
        untrimmed.resolve_parameters(&pairs(&[("A", " x ")])),
        Ok(pairs(&[("A", " x ")]))
    );
}

#[test]
fn long_lists_and_values_are_cut_in_messages() {
    let definitions: String = (0..30)
        .map(|i| format!("<x.P><name>P{i}</name></x.P>"))
        .collect();
    let config = job(&with_parameters(&definitions));
    let long = "x".repeat(500);
    let message = config
        .resolve_parameters(&[(long, String::new())])
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!(
            "'{}' is not a valid parameter. Did you mean P0?",
            "x".repeat(80)
        )
    );
}

fn with_property(property: &str) -> String {
    format!("<project><properties>{property}</properties></project>")
}

fn rotator(children: &str) -> String {
    with_property(&format!(
        r#"<jenkins.model.BuildDiscarderProperty><strategy class="hudson.tasks.LogRotator">{children}</strategy></jenkins.model.BuildDiscarderProperty>"#
    ))
}

#[test]
fn the_build_discarder_is_read_from_the_property_and_the_legacy_element() {
    assert_eq!(
        job(JENKINS_JOB).build_discarder(),
        Some(BuildDiscarder {
            days_to_keep: None,
            num_to_keep: Some(10)
        })
    );
    let both = job(&rotator(
        "<daysToKeep>30</daysToKeep><numToKeep> 5 </numToKeep><artifactDaysToKeep>-1</artifactDaysToKeep>",
    ));
    assert_eq!(
        both.build_discarder(),
        Some(BuildDiscarder {
            days_to_keep: Some(30),
            num_to_keep: Some(5)
        })
    );
    assert_round_trips(&both);
    let legacy = job(
        r#"<project><logRotator class="hudson.tasks.LogRotator"><daysToKeep>7</daysToKeep><numToKeep>-1</numToKeep></logRotator></project>"#,
    );
    assert_eq!(
        legacy.build_discarder(),
        Some(BuildDiscarder {
            days_to_keep: Some(7),
            num_to_keep: None
        })
    );
    // No limits, another strategy's class, or no strategy: nothing is discarded.
    for nothing in [
        rotator("<daysToKeep>-1</daysToKeep><numToKeep></numToKeep>"),
        with_property(
            r#"<jenkins.model.BuildDiscarderProperty><strategy class="org.example.Other"><numToKeep>1</numToKeep></strategy></jenkins.model.BuildDiscarderProperty>"#,
        ),
        with_property("<jenkins.model.BuildDiscarderProperty/>"),
        "<project/>".to_owned(),
    ] {
        assert_eq!(job(&nothing).build_discarder(), None, "{nothing}");
    }
}

#[test]
fn bad_discarder_limits_are_refused_with_the_element_named() {
    assert_eq!(
        error(&rotator("<numToKeep>ten</numToKeep>")),
        "invalid value \"ten\" in <numToKeep>: expected a whole number of 0 or more, or -1 for no limit"
    );
    assert!(error(&rotator("<daysToKeep>-2</daysToKeep>")).contains("<daysToKeep>"));
    assert!(
        error(&rotator("<numToKeep>1</numToKeep><numToKeep>2</numToKeep>"))
            .contains("more than once")
    );
    let twice = "<jenkins.model.BuildDiscarderProperty/>".repeat(2);
    assert!(error(&with_property(&twice)).contains("more than once"));
}

#[test]
fn a_stored_job_with_an_unreadable_discarder_stays_readable_and_keeps_it() {
    for stored in [
        rotator("<numToKeep>${KEEP}</numToKeep>"),
        with_property(&"<jenkins.model.BuildDiscarderProperty/>".repeat(2)),
    ] {
        let config = JobConfig::from_stored_xml(&stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.build_discarder(), None);
        assert!(
            config
                .to_xml()
                .contains("jenkins.model.BuildDiscarderProperty"),
            "the element is kept as written"
        );
    }
}

#[test]
fn the_legacy_log_rotator_counts_only_without_the_property() {
    let legacy =
        r#"<logRotator class="hudson.tasks.LogRotator"><numToKeep>3</numToKeep></logRotator>"#;
    let with_other_strategy = format!(
        r#"<project><properties><jenkins.model.BuildDiscarderProperty><strategy class="org.example.Other"/></jenkins.model.BuildDiscarderProperty></properties>{legacy}</project>"#
    );
    assert_eq!(job(&with_other_strategy).build_discarder(), None);
    let alone = format!("<project>{legacy}</project>");
    assert_eq!(
        job(&alone).build_discarder().and_then(|d| d.num_to_keep),
        Some(3)
    );
}

#[test]
fn disabling_says_whether_it_changed() {
    let mut config = JobConfig::new();
    assert!(config.set_disabled(true));
    assert!(!config.set_disabled(true));
    assert!(config.to_xml().contains("<disabled>true</disabled>"));
    assert!(config.set_disabled(false));
}

#[test]
fn job_names_follow_jenkins_rules() {
    for ok in ["app", "app build", "ünï-1.2", "a.b"] {
        assert_eq!(validate_job_name(ok), Ok(()), "{ok}");
    }
    let message = |name: &str| validate_job_name(name).unwrap_err().to_string();
    assert_eq!(message(""), "Job name is empty");
    assert_eq!(message("."), "‘.’ is not allowed as a job name");
    assert_eq!(message(" app"), "‘ app’ is not allowed as a job name");
    assert_eq!(
        message("a/b"),
        "‘/’ is an unsafe character in job name ‘a/b’"
    );
    // Control characters are shown, not obeyed.
    assert_eq!(
        message("a\tb"),
        "‘\\t’ is an unsafe character in job name ‘a\\tb’"
    );
    assert_eq!(
        message("\u{1b}[2J"),
        "‘\\u{1b}’ is an unsafe character in job name ‘\\u{1b}[2J’"
    );
    assert_eq!(
        message(&"j".repeat(MAX_JOB_NAME_LEN + 1)),
        "Job name is longer than 255 characters"
    );
    for ch in crate::names::UNSAFE_NAME_CHARS.chars() {
        assert!(validate_job_name(&format!("a{ch}b")).is_err(), "{ch}");
    }
}

// Property tests.

/// Text as it reads back from a trimmed element: no control characters, no blank edges.
fn trimmed() -> impl Strategy<Value = String> {
    "\\PC{0,12}".prop_map(|s| s.trim().to_owned())
}

/// Text kept as written: any printable characters, blanks and newlines at either end.
fn verbatim() -> impl Strategy<Value = String> {
    "[\\PC\n ]{0,12}"
}

fn any_parameter(name: String) -> impl Strategy<Value = ParameterDefinition> {
    let string = (trimmed(), verbatim(), any::<bool>()).prop_map({
        let name = name.clone();
        move |(description, default_value, trim)| {
            let mut p = StringParameter::new(name.clone(), default_value);
            p.description = description;
            p.trim = trim;
            ParameterDefinition::String(p)
        }
    });
    let boolean = (trimmed(), any::<bool>()).prop_map({
        let name = name.clone();
        move |(description, default_value)| {
            let mut p = BooleanParameter::new(name.clone(), default_value);
            p.description = description;
            ParameterDefinition::Boolean(p)
        }
    });
    let choice = (trimmed(), prop::collection::vec(verbatim(), 1..4)).prop_map(
        move |(description, choices)| {
            let mut p = ChoiceParameter::new(name.clone(), choices);
            p.description = description;
            ParameterDefinition::Choice(p)
        },
    );
    prop_oneof![string, boolean, choice]
}

fn any_parameters() -> impl Strategy<Value = Vec<ParameterDefinition>> {
    prop::collection::vec("[A-Za-z_][A-Za-z0-9_. -]{0,8}", 0..4).prop_flat_map(|names| {
        // Unique names: a parameter's index makes it so.
        names
            .into_iter()
            .enumerate()
            .map(|(i, n)| any_parameter(format!("{}{i}", n.trim())))
            .collect::<Vec<_>>()
    })
}

fn any_builder() -> impl Strategy<Value = Builder> {
    prop_oneof![
        verbatim().prop_map(|c| Builder::Shell(Shell::new(c))),
        verbatim().prop_map(|t| Builder::Other(if t.is_empty() {
            // As read: an empty element has no text child.
            Element::new("hudson.tasks.Ant")
        } else {
            Element::with_text("hudson.tasks.Ant", t)
        })),
    ]
}

/// Job XML with the interpreted elements present or not, in any order, among unknown ones;
/// the values do not matter, the test replaces them.
fn any_skeleton() -> impl Strategy<Value = String> {
    let pieces = vec![
        "<actions/>",
        "<description>d</description>",
        "<properties><x.A/><hudson.model.ParametersDefinitionProperty><parameterDefinitions><x.Password><name>P</name></x.Password></parameterDefinitions></hudson.model.ParametersDefinitionProperty><x.B>b</x.B></properties>",
        "<scm class=\"hudson.scm.NullSCM\"/>",
        "<assignedNode>l</assignedNode>",
        "<canRoam>false</canRoam>",
        "<disabled>true</disabled>",
        "<triggers><x.Timer><spec>H * * * *</spec></x.Timer></triggers>",
        "<concurrentBuild>true</concurrentBuild>",
        "<builders><hudson.tasks.Shell><x.S/><command>c</command></hudson.tasks.Shell></builders>",
        "<publishers/>",
        "<x.Plugin a=\"1\">text</x.Plugin>",
        "<x.Mixed>\n  a<!-- c -->b<y/>\n c <![CDATA[<d>]]>\n</x.Mixed>",
    ];
    (prop::sample::subsequence(pieces, 0..=13), any::<bool>())
        .prop_flat_map(|(pieces, attribute)| (Just(pieces).prop_shuffle(), Just(attribute)))
        .prop_map(|(pieces, attribute)| {
            let root = if attribute {
                "<project plugin=\"x@1\">"
            } else {
                "<project>"
            };
            format!("{root}{}</project>", pieces.concat())
        })
}

/// Bits of job XML, glued at random into documents that parse now and then.
const FRAGMENTS: &[&str] = &[
    "<project>",
    "</project>",
    "<properties>",
    "</properties>",
    "<hudson.model.ParametersDefinitionProperty><parameterDefinitions>",
    "</parameterDefinitions></hudson.model.ParametersDefinitionProperty>",
    "<hudson.model.StringParameterDefinition>",
    "</hudson.model.StringParameterDefinition>",
    "<hudson.model.ChoiceParameterDefinition>",
    "</hudson.model.ChoiceParameterDefinition>",
    "<hudson.model.BooleanParameterDefinition>",
    "</hudson.model.BooleanParameterDefinition>",
    "<name>A</name>",
    "<name>B</name>",
    "<defaultValue>true</defaultValue>",
    "<trim>true</trim>",
    "<choices>",
    "</choices>",
    "<a>",
    "</a>",
    "<string>x</string>",
    "<builders>",
    "</builders>",
    "<hudson.tasks.Shell>",
    "</hudson.tasks.Shell>",
    "<command>ls</command>",
    "<assignedNode>l</assignedNode>",
    "<canRoam>true</canRoam>",
    "<x/>",
    " ",
    "\n",
    "&amp;",
];

proptest! {
    #[test]
    fn generated_jobs_write_and_read_back_equal(
        skeleton in any_skeleton(),
        description in trimmed(),
        assigned_node in proptest::option::of(trimmed()),
        disabled in any::<bool>(),
        concurrent_build in any::<bool>(),
        parameters in any_parameters(),
        builders in prop::collection::vec(any_builder(), 0..3),
    ) {
        let mut config = job(&skeleton);
        assert_round_trips(&config);
        config.description = description;
        config.assigned_node = assigned_node.filter(|l| !l.is_empty());
        config.disabled = disabled;
        config.concurrent_build = concurrent_build;
        config.parameters = parameters;
        config.builders = builders;
        assert_round_trips(&config);
    }

    #[test]
    fn from_xml_never_panics(text in any::<String>()) {
        let _ = JobConfig::from_xml(&text);
    }

    #[test]
    fn glued_fragments_parse_or_fail_cleanly(
        pieces in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40),
    ) {
        if let Ok(config) = JobConfig::from_xml(&pieces.concat()) {
            assert_round_trips(&config);
        }
    }
}

fn breakpoint_property(children: &str) -> String {
    with_property(&format!(
        "<steward.BreakpointProperty>{children}</steward.BreakpointProperty>"
    ))
}

#[test]
fn the_breakpoint_is_read_with_its_defaults() {
    use std::time::Duration;
    let documented = breakpoint_property(
        "<when>onFailure</when><duration>30m</duration><maxDuration>6h</maxDuration>
         <connectTimeout>10m</connectTimeout><resumeOnLogout>false</resumeOnLogout>",
    );
    let config = job(&documented);
    let breakpoint = config.breakpoint().unwrap();
    assert_eq!(breakpoint.when, BreakpointWhen::OnFailure);
    assert_eq!(breakpoint.duration, Duration::from_secs(1800));
    assert_eq!(breakpoint.max_duration, Duration::from_secs(6 * 3600));
    assert_eq!(breakpoint.connect_timeout, Some(Duration::from_secs(600)));
    assert!(!breakpoint.resume_on_logout);
    assert!(
        config
            .to_xml()
            .contains("<connectTimeout>10m</connectTimeout>")
    );
    assert_round_trips(&config);

    let empty = job(&breakpoint_property(""));
    assert_eq!(empty.breakpoint(), Some(&Breakpoint::default()));
    assert_eq!(job("<project/>").breakpoint(), None);

    let users = job(&breakpoint_property(
        "<when>ALWAYS</when><resumeOnLogout>true</resumeOnLogout><allowedSshUsers><string>ci</string><string>web-7</string></allowedSshUsers>",
    ));
    let breakpoint = users.breakpoint().unwrap();
    assert_eq!(breakpoint.when, BreakpointWhen::Always);
    assert!(breakpoint.resume_on_logout);
    assert_eq!(breakpoint.allowed_ssh_users, ["ci", "web-7"]);
}

#[test]
fn bad_breakpoints_are_refused_with_the_element_named() {
    assert_eq!(
        error(&breakpoint_property("<when>sometimes</when>")),
        "invalid value \"sometimes\" in <when>: expected onFailure, always or never"
    );
    assert!(error(&breakpoint_property("<duration>30</duration>")).contains("<duration>"));
    assert!(error(&breakpoint_property("<duration>0s</duration>")).contains("longer than 0s"));
    assert!(
        error(&breakpoint_property(
            "<duration>2h</duration><maxDuration>1h</maxDuration>"
        ))
        .contains("longer than maxDuration (1h)")
    );
    assert!(error(&breakpoint_property("<maxDuration>30d</maxDuration>")).contains("at most 7d"));
    assert!(
        error(&breakpoint_property(
            "<resumeOnLogout>maybe</resumeOnLogout>"
        ))
        .contains("<resumeOnLogout>")
    );
    assert!(
        error(&breakpoint_property(
            "<allowedSshUsers><string>a b</string></allowedSshUsers>"
        ))
        .contains("no blanks")
    );
    let twice = "<steward.BreakpointProperty/>".repeat(2);
    assert!(error(&with_property(&twice)).contains("more than once"));
    // A stored job keeps working, without its breakpoint.
    let stored =
        JobConfig::from_stored_xml(&breakpoint_property("<when>sometimes</when>")).unwrap();
    assert_eq!(stored.breakpoint(), None);
    assert!(stored.to_xml().contains("<when>sometimes</when>"));
}

#[test]
fn elements_steward_does_not_act_on_are_named_with_their_plugin() {
    let xml = r#"<project>
  <scm class="hudson.scm.SubversionSCM" plugin="subversion@2.17.3"><locations/></scm>
  <triggers><hudson.triggers.TimerTrigger><spec>H * * * *</spec></hudson.triggers.TimerTrigger><org.jenkinsci.plugins.gwt.GenericTrigger plugin="generic-webhook-trigger@2.2.2"/></triggers>
  <builders>
    <hudson.tasks.Shell><command>make</command></hudson.tasks.Shell>
    <hudson.tasks.Maven><targets>install</targets></hudson.tasks.Maven>
  </builders>
  <publishers><hudson.tasks.Mailer plugin="mailer@472.vf7c289a_4b_420"><recipients>dev@example.com</recipients></hudson.tasks.Mailer></publishers>
  <buildWrappers><hudson.plugins.ansicolor.AnsiColorBuildWrapper plugin="ansicolor@1.0.4"/></buildWrappers>
</project>"#;
    let config = JobConfig::from_xml(xml).unwrap();
    let warnings: Vec<String> = config.ignored().iter().map(Ignored::warning).collect();
    assert_eq!(
        warnings,
        [
            "WARNING: Steward ignores <hudson.scm.SubversionSCM> (plugin subversion); builds run without it",
            "WARNING: Steward ignores <org.jenkinsci.plugins.gwt.GenericTrigger> (plugin generic-webhook-trigger); builds run without it",
            "WARNING: Steward ignores <hudson.tasks.Mailer> (plugin mailer); builds run without it",
            "WARNING: Steward ignores <hudson.plugins.ansicolor.AnsiColorBuildWrapper> (plugin ansicolor); builds run without it",
            "WARNING: Steward ignores <hudson.tasks.Maven> (Jenkins core); builds run without it",
        ]
    );
    let sections: Vec<&str> = config.ignored().iter().map(|i| i.section).collect();
    assert_eq!(
        sections,
        ["scm", "triggers", "publishers", "buildWrappers", "builders"]
    );
    let none = JobConfig::from_xml(
        r#"<project><scm class="hudson.scm.NullSCM"/><triggers/><builders/></project>"#,
    )
    .unwrap();
    assert!(none.ignored().is_empty());
    // Git is checked out; of its extensions, those Steward does not carry out are named.
    let git = JobConfig::from_xml(
        r#"<project><scm class="hudson.plugins.git.GitSCM" plugin="git@5.2.1">
      <userRemoteConfigs><hudson.plugins.git.UserRemoteConfig><url>file:///srv/r.git</url></hudson.plugins.git.UserRemoteConfig></userRemoteConfigs>
      <extensions><hudson.plugins.git.extensions.impl.SubmoduleOption/><hudson.plugins.git.extensions.impl.CleanBeforeCheckout/></extensions>
    </scm></project>"#,
    )
    .unwrap();
    assert_eq!(git.git().unwrap().remotes[0].url, "file:///srv/r.git");
    let warnings: Vec<String> = git.ignored().iter().map(Ignored::warning).collect();
    assert_eq!(
        warnings,
        [
            "WARNING: Steward ignores <hudson.plugins.git.extensions.impl.SubmoduleOption> (plugin git); builds run without it"
        ]
    );
    // A Git SCM without a repository is refused when new, read as none when stored.
    let empty = r#"<project><scm class="hudson.plugins.git.GitSCM"><configVersion>2</configVersion></scm></project>"#;
    assert!(error(empty).contains("at least one repository URL"));
    assert!(JobConfig::from_stored_xml(empty).unwrap().git().is_none());
}

#[test]
fn a_plain_pre_build_cleanup_is_done_and_one_with_patterns_is_ignored() {
    let plain = r#"<project><buildWrappers><hudson.plugins.ws__cleanup.PreBuildCleanup plugin="ws-cleanup@0.45"><deleteDirs>false</deleteDirs><cleanupParameter></cleanupParameter><externalDelete></externalDelete><disableDeferredWipeout>false</disableDeferredWipeout></hudson.plugins.ws__cleanup.PreBuildCleanup></buildWrappers></project>"#;
    let config = JobConfig::from_xml(plain).unwrap();
    assert!(config.pre_build_cleanup());
    assert!(config.ignored().is_empty());
    let patterned = plain.replace(
        "<deleteDirs>",
        "<patterns><hudson.plugins.ws__cleanup.Pattern><pattern>*.log</pattern><type>INCLUDE</type></hudson.plugins.ws__cleanup.Pattern></patterns><deleteDirs>",
    );
    let config = JobConfig::from_xml(&patterned).unwrap();
    assert!(!config.pre_build_cleanup());
    assert_eq!(config.ignored().len(), 1);
}
