//! Valid inputs for each target, written with the encoders, so the fuzzer starts from frames
//! and documents that get past the first checks. `examples/seed_corpus.rs` writes them into
//! `corpus/<target>/`.

use bytes::{Bytes, BytesMut};
use steward_protocol::channel::{
    self, FEATURE_MUX, Frame, GoAway, GoAwayCode, Hello, Open, ResetCode, Role,
};
use steward_protocol::handshake::{channel_answer, channel_offer};
use steward_protocol::jnlp::{self, AgentLaunch};
use steward_protocol::job_xml::{Builder, JobConfig, Shell};
use steward_protocol::label::LabelExpr;
use steward_protocol::node_xml::NodeConfig;
use steward_protocol::plaincli::{self, encode_http, encode_ws};
use steward_protocol::secret::{NodeSecret, SecretKey};
use steward_protocol::services::{
    AgentInfo, ExecEvent, ExecRequest, FileKind, FileStat, Request, Response, encode,
    encode_request,
};
use steward_protocol::steps::{StepEvent, StepOutcome, StepSpec, StepState, StepStatus};

use super::xml::{FIELD_SEPARATOR, JNLP_SECRET};

/// The seeds of the target named `target` (a name in [`super::TARGETS`]).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "mux_frame" => mux_frame(),
        "plaincli_ws" => plaincli_ws(),
        "plaincli_http" => plaincli_http(),
        "jnlp_xml" => jnlp_xml(),
        "node_xml" => node_xml(),
        "job_xml" => job_xml(),
        "handshake_headers" => handshake_headers(),
        "services" => services(),
        "label_expr" => label_expr(),
        other => panic!("no target {other}"),
    }
}

fn exec_request() -> Request {
    Request::Exec(ExecRequest {
        argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
        env: vec![("LANG".into(), "C".into())],
        cwd: Some("work".into()),
        stdin: true,
        timeout_ms: Some(60_000),
    })
}

fn mux_frame() -> Vec<Vec<u8>> {
    let frames = [
        Frame::Hello(Hello {
            role: Role::Agent,
            channel_version: 1,
            software_version: "0.1.0".into(),
            node_name: "linux-1".into(),
            features: vec![FEATURE_MUX.into()],
            ping_interval_secs: 0,
            idle_timeout_secs: 60,
        }),
        Frame::GoAway(GoAway {
            code: GoAwayCode::NodeDeleted,
            reason: "node deleted".into(),
        }),
        Frame::Open {
            stream: 1,
            open: Open {
                window: 1 << 20,
                header: encode_request(&exec_request()).into(),
            },
        },
        Frame::Data {
            stream: 1,
            payload: encode(&ExecEvent::Stdout(b"hi\n".to_vec())).into(),
        },
        Frame::Eof { stream: 3 },
        Frame::Reset {
            stream: 5,
            code: ResetCode::Refused,
            reason: "unknown service".into(),
        },
        Frame::Window {
            stream: 1,
            increment: 65536,
        },
        Frame::Ping { nonce: 42 },
        Frame::Pong { nonce: 42 },
    ];
    let mut seeds: Vec<Vec<u8>> = frames.iter().map(Frame::encode).collect();
    seeds.push(vec![channel::kind::FIRST_EXTENSION, 0, 0, 0, 0, 0, 1, 2, 3]);
    seeds
}

const CLIENT: u8 = 0;
const SERVER: u8 = 1;

fn client_frames() -> Vec<plaincli::Frame> {
    use plaincli::Frame::*;
    vec![
        Arg("who-am-i".into()),
        Arg("é\0😀".into()),
        Locale("en_US".into()),
        Encoding("UTF-8".into()),
        Start,
        Stdin(Bytes::from_static(b"input\n")),
        EndStdin,
    ]
}

fn server_frames() -> Vec<plaincli::Frame> {
    use plaincli::Frame::*;
    vec![
        Stdout(Bytes::from_static(b"Authenticated as: admin\n")),
        Stderr(Bytes::from_static(b"ERROR: no such job\n")),
        Exit(3),
    ]
}

fn plaincli_ws() -> Vec<Vec<u8>> {
    let one = |direction: u8, frame: &plaincli::Frame| {
        let mut seed = vec![direction];
        seed.extend_from_slice(&encode_ws(frame).unwrap());
        seed
    };
    let mut seeds: Vec<Vec<u8>> = client_frames().iter().map(|f| one(CLIENT, f)).collect();
    seeds.extend(server_frames().iter().map(|f| one(SERVER, f)));
    seeds
}

fn plaincli_http() -> Vec<Vec<u8>> {
    let body = |direction: u8, piece: u8, frames: Vec<plaincli::Frame>| {
        let mut buf = BytesMut::new();
        for f in &frames {
            encode_http(f, &mut buf).unwrap();
        }
        let mut seed = vec![direction, piece];
        seed.extend_from_slice(&buf);
        seed
    };
    vec![
        body(CLIENT, 7, client_frames()),
        body(SERVER, 3, server_frames()),
        // Ends inside a frame.
        body(CLIENT, 1, vec![plaincli::Frame::Start])[..6].to_vec(),
    ]
}

fn jnlp_xml() -> Vec<Vec<u8>> {
    let secret = NodeSecret::new(JNLP_SECRET);
    let launch = AgentLaunch {
        node_name: "linux-1",
        secret: &secret,
        web_socket: true,
        work_dir: Some(("/home/ci/agent", "remoting")),
        root_url: "https://ci.example.com/jenkins/",
    };
    let document = launch.document();
    let mut plain = vec![0];
    plain.extend_from_slice(document.as_bytes());
    let mut encrypted = vec![1];
    encrypted.extend(jnlp::encrypt(&secret, [9; 16], document.as_bytes()).unwrap());
    let mut fields = vec![2];
    for field in [
        "linux-1",
        JNLP_SECRET,
        "/home/ci/agent",
        "remoting",
        "https://ci.example.com/",
    ] {
        fields.extend_from_slice(field.as_bytes());
        fields.push(FIELD_SEPARATOR);
    }
    fields.pop();
    vec![plain, encrypted, fields]
}

const JENKINS_NODE: &str = r#"<?xml version="1.1" encoding="UTF-8"?>
<slave>
  <name>linux-1</name>
  <description>build box &amp; more</description>
  <remoteFS>/home/ci/agent</remoteFS>
  <numExecutors>2</numExecutors>
  <mode>EXCLUSIVE</mode>
  <retentionStrategy class="hudson.slaves.RetentionStrategy$Always"/>
  <launcher class="hudson.slaves.JNLPLauncher">
    <workDirSettings><disabled>false</disabled><internalDir>remoting</internalDir>
      <failIfWorkDirIsMissing>false</failIfWorkDirIsMissing></workDirSettings>
    <webSocket>true</webSocket>
  </launcher>
  <label>linux x86_64</label>
  <nodeProperties><hudson.slaves.EnvironmentVariablesNodeProperty><![CDATA[a<b]]></hudson.slaves.EnvironmentVariablesNodeProperty></nodeProperties>
  <!-- a comment -->
</slave>"#;

fn node_xml() -> Vec<Vec<u8>> {
    vec![
        JENKINS_NODE.as_bytes().to_vec(),
        NodeConfig::inbound("build box").to_xml().into_bytes(),
        b"<hudson.slaves.DumbSlave><name>ssh</name><launcher class=\"hudson.plugins.sshslaves.SSHLauncher\"><host>build.example.com</host><port>22</port></launcher></hudson.slaves.DumbSlave>".to_vec(),
        b"<slave><name>small</name><nodeProperties><hudson.node__monitors.DiskSpaceMonitorNodeProperty><freeDiskSpaceThreshold> 1.5 GiB </freeDiskSpaceThreshold><freeTempSpaceThreshold>1GiB</freeTempSpaceThreshold></hudson.node__monitors.DiskSpaceMonitorNodeProperty></nodeProperties></slave>".to_vec(),
    ]
}

/// A job as Jenkins writes it: every element a freestyle project has, each parameter kind
/// (choices in the list form), a kept property, parameter class and step.
const JENKINS_JOB: &str = r#"<?xml version='1.1' encoding='UTF-8'?>
<project plugin="freestyle@1.0">
  <actions/>
  <description>nightly &amp; more</description>
  <keepDependencies>false</keepDependencies>
  <properties>
    <jenkins.model.BuildDiscarderProperty>
      <strategy class="hudson.tasks.LogRotator"><daysToKeep>-1</daysToKeep><numToKeep>10</numToKeep></strategy>
    </jenkins.model.BuildDiscarderProperty>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>BRANCH</name><description>branch</description><defaultValue>main</defaultValue><trim>true</trim>
        </hudson.model.StringParameterDefinition>
        <hudson.model.BooleanParameterDefinition>
          <name>DEBUG</name><description/><defaultValue>false</defaultValue>
        </hudson.model.BooleanParameterDefinition>
        <hudson.model.ChoiceParameterDefinition>
          <name>TARGET</name><description/>
          <choices class="java.util.Arrays$ArrayList"><a class="string-array"><string>dev</string><string>prod</string></a></choices>
        </hudson.model.ChoiceParameterDefinition>
        <hudson.model.PasswordParameterDefinition>
          <name>TOKEN</name><description/><defaultValue>{AQAAABAAAAAQ3v7Kq2E=}</defaultValue>
        </hudson.model.PasswordParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <scm class="hudson.scm.NullSCM"/>
  <assignedNode>linux &amp;&amp; !arm</assignedNode>
  <canRoam>false</canRoam>
  <disabled>false</disabled>
  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>
  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>
  <triggers/>
  <concurrentBuild>false</concurrentBuild>
  <builders>
    <hudson.tasks.Shell><command><![CDATA[make && make test]]></command><configuredLocalRules/></hudson.tasks.Shell>
    <hudson.tasks.Maven><targets>clean install</targets></hudson.tasks.Maven>
  </builders>
  <publishers/>
  <buildWrappers/>
  <!-- a comment -->
</project>"#;

fn job_xml() -> Vec<Vec<u8>> {
    let mut built = JobConfig::new();
    built.assigned_node = Some("linux".into());
    built.builders.push(Builder::Shell(Shell::new("echo hi")));
    vec![
        JENKINS_JOB.as_bytes().to_vec(),
        built.to_xml().into_bytes(),
        // The plain-text choices, and a root Steward refuses.
        b"<project><properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions><hudson.model.ChoiceParameterDefinition><name>ENV</name><choices>dev\nprod</choices></hudson.model.ChoiceParameterDefinition></parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties></project>".to_vec(),
        // As many root attributes as an element may have (`xml::MAX_XML_ATTRIBUTES_PER_ELEMENT`).
        format!(
            "<project {}/>",
            (0..256)
                .map(|i| format!("a{i}='{i}'"))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .into_bytes(),
        b"<flow-definition plugin=\"workflow-job@1400\"><definition class=\"org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition\"><script>node {}</script></definition></flow-definition>".to_vec(),
    ]
}

fn handshake_headers() -> Vec<Vec<u8>> {
    let name = "linux-1";
    let secret = SecretKey::from_bytes([7; 32]).node_secret(name);
    let cookie = "0123456789abcdef".repeat(4);
    let headers = [
        name,
        secret.expose(),
        &cookie,
        &channel_offer(&[1, 2]),
        &channel_answer(1),
    ];
    vec![
        headers.join("\n").into_bytes(),
        b"bad/name\n\n\nsteward-channel/7\nsteward-channel/1,2".to_vec(),
    ]
}

fn services() -> Vec<Vec<u8>> {
    let stat = FileStat {
        kind: FileKind::File,
        size: 12,
        mode: 0o644,
        modified_ms: 1_700_000_000_000,
    };
    let mut seeds = vec![
        encode_request(&Request::Info),
        encode_request(&Request::InfoV2),
        encode_request(&exec_request()),
        encode_request(&Request::ReadFile {
            path: "logs/build.log".into(),
            offset: 7,
        }),
        encode_request(&Request::WriteFile {
            path: "x".into(),
            mode: Some(0o755),
        }),
        encode(&Response::Info(AgentInfo {
            os: "Linux".into(),
            arch: "x86_64".into(),
            cpus: 2,
            memory_total_bytes: 1 << 33,
            memory_available_bytes: 1 << 32,
            work_dir: "/home/ci/agent".into(),
            work_dir_free_bytes: 1 << 35,
            agent_version: "0.1.0".into(),
            clock_ms: 1_700_000_000_000,
        })),
        encode(&Response::List(vec![
            steward_protocol::services::DirEntry {
                name: "a.txt".into(),
                stat: stat.clone(),
            },
        ])),
        encode(&Response::Stat(stat)),
        encode(&ExecEvent::Exited {
            code: Some(0),
            signal: None,
            timed_out: false,
        }),
        encode(&ExecEvent::Failed {
            error: "No such file or directory".into(),
        }),
    ];
    seeds.push(encode(&ExecEvent::Started { pid: 4242 }));
    seeds.push(encode(&Response::InfoV2 {
        info: AgentInfo {
            os: "Linux".into(),
            arch: "aarch64".into(),
            cpus: 4,
            memory_total_bytes: 1 << 33,
            memory_available_bytes: 1 << 32,
            work_dir: "/srv/agent".into(),
            work_dir_free_bytes: 16 << 10,
            agent_version: "0.1.0".into(),
            clock_ms: 1_700_000_000_000,
        },
        work_dir_total_bytes: 20 << 20,
    }));
    seeds.extend(step_seeds());
    seeds
}

fn label_expr() -> Vec<Vec<u8>> {
    let written = [
        "linux && !arm",
        "(linux || mac) && x86-64",
        "a -> b <-> !c",
        "docker&&(\"build box\"||linux-1)",
        "   ",
    ];
    let mut seeds: Vec<Vec<u8>> = written.iter().map(|e| e.as_bytes().to_vec()).collect();
    // Quoting and escapes, as the canonical form writes them.
    let quoted = LabelExpr::Or(vec![
        LabelExpr::Atom("my label".into()),
        LabelExpr::Not(Box::new(LabelExpr::Atom("a\"b\\c->d".into()))),
    ]);
    seeds.push(quoted.to_string().into_bytes());
    seeds
}

/// The durable-step requests, their answers, the tail's events and the start's spec.
fn step_seeds() -> Vec<Vec<u8>> {
    let id = || "build-42".to_owned();
    vec![
        encode_request(&Request::StartStep {
            id: id(),
            workspace: "workspace/app".into(),
        }),
        encode_request(&Request::TailStep {
            id: id(),
            offset: 1234,
        }),
        encode_request(&Request::KillStep {
            id: id(),
            grace_ms: 10_000,
        }),
        encode_request(&Request::ListSteps),
        encode_request(&Request::RemoveStep { id: id() }),
        encode(&Response::StepStarted {
            pgid: 4242,
            dir: "/home/ci/agent/steps/build-42".into(),
        }),
        encode(&Response::StepTail { log_len: 1234 }),
        encode(&Response::Steps(vec![
            StepStatus {
                id: "build-41".into(),
                state: StepState::Ended(StepOutcome::Exited { code: 143 }),
                log_len: 99,
            },
            StepStatus {
                id: id(),
                state: StepState::Running { pgid: 4242 },
                log_len: 1234,
            },
            StepStatus {
                id: "build-40".into(),
                state: StepState::Ended(StepOutcome::Lost),
                log_len: 0,
            },
        ])),
        encode(&StepEvent::Log(b"+ make\nok\n".to_vec())),
        encode(&StepEvent::Ended(StepOutcome::Exited { code: 3 })),
        encode(&StepEvent::Ended(StepOutcome::Lost)),
        encode(&StepSpec {
            script: b"make test\n".to_vec(),
            env: vec![("BUILD_ID".into(), "42".into())],
        }),
    ]
}
