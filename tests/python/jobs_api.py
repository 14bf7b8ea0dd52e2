"""Drives jobs, builds and the queue through python-jenkins, the way scripts in the wild do.

Usage: jobs_api.py URL USER TOKEN AGENT_NODE
The agent AGENT_NODE must be online with two executors. Exits non-zero with the failing
check on stderr; prints one line per check passed. Every wait polls a condition until a
deadline.
"""
import sys
import time

import jenkins
import requests

url, user, token, agent_node = sys.argv[1:5]
server = jenkins.Jenkins(url, username=user, password=token, timeout=20)
DEADLINE = 60.0


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED {name}: {detail}")
    print(f"ok {name}")


def wait_for(what, probe, deadline=DEADLINE):
    """Polls probe() until it returns something truthy; that value."""
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            sys.exit(f"FAILED waiting for {what}")
        time.sleep(0.1)


def raises(call, exception):
    try:
        call()
    except exception as e:
        return e
    return None


def job_xml(command, params="", label=None, concurrent=False):
    assigned = f"<assignedNode>{label}</assignedNode>" if label else ""
    properties = (
        "<properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>"
        f"{params}</parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties>"
        if params else "<properties/>"
    )
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<project>
  <description>made by python-jenkins</description>
  {assigned}
  <disabled>false</disabled>
  <concurrentBuild>{str(concurrent).lower()}</concurrentBuild>
  {properties}
  <builders><hudson.tasks.Shell><command>{command}</command></hudson.tasks.Shell></builders>
</project>"""


def started_build(queue_id):
    """Polls the queue item until it names its build; the build number."""
    item = wait_for(f"queue item {queue_id} to start",
                    lambda: (lambda i: i if i.get("executable") else None)(server.get_queue_item(queue_id)))
    return item["executable"]["number"]


def finished(job, number):
    return wait_for(f"{job} #{number} to finish",
                    lambda: (lambda b: b if not b["building"] else None)(server.get_build_info(job, number)))


# -- create, read and change a job
server.create_job("py-ok", job_xml("echo first"))
check("create_job", server.job_exists("py-ok"))
check("get_job_name (tree=name)", server.get_job_name("py-ok") == "py-ok")
e = raises(lambda: server.create_job("py-ok", job_xml("echo again")), jenkins.JenkinsException)
check("create_job refuses a taken name", e is not None and "already exists" in str(e), e)
config = server.get_job_config("py-ok")
check("get_job_config", "<command>echo first</command>" in config, config)
server.reconfig_job("py-ok", job_xml("echo hello-from-$JOB_NAME"))
config = server.get_job_config("py-ok")
check("reconfig_job", "<command>echo hello-from-$JOB_NAME</command>" in config, config)
info = server.get_job_info("py-ok")
check("a new job", info["color"] == "notbuilt" and info["buildable"] is True
      and info["builds"] == [] and info["lastBuild"] is None and info["nextBuildNumber"] == 1
      and info["inQueue"] is False and info["queueItem"] is None, info)

# -- a build without parameters: queue item → build → result and console
queue_id = server.build_job("py-ok")
number = started_build(queue_id)
check("build_job → get_queue_item names the build", number == 1, number)
build = finished("py-ok", number)
check("get_build_info", build["result"] == "SUCCESS" and build["number"] == 1
      and build["builtOn"] == agent_node and build["queueId"] == queue_id
      and build["fullDisplayName"] == "py-ok #1" and build["id"] == "1"
      and build["duration"] >= 0 and build["url"].endswith("/job/py-ok/1/"), build)
causes = [a for a in build["actions"] if a.get("_class") == "hudson.model.CauseAction"]
check("the cause is the user", causes and causes[0]["causes"][0]["shortDescription"]
      == f"Started by user {user}", build["actions"])
console = server.get_build_console_output("py-ok", number)
check("get_build_console_output", "hello-from-py-ok" in console
      and console.rstrip().endswith("Finished: SUCCESS"), console)
check("a permalink names the build", server.get_build_info("py-ok", "lastSuccessfulBuild")["number"] == 1)
item = server.get_queue_item(queue_id)
check("the left item", item["_class"] == "hudson.model.Queue$LeftItem"
      and item["executable"]["url"].endswith("/job/py-ok/1/") and item["cancelled"] is False, item)
info = server.get_job_info("py-ok")
check("job info after a build", info["color"] == "blue" and info["lastBuild"]["number"] == 1
      and info["lastSuccessfulBuild"]["number"] == 1 and info["lastFailedBuild"] is None
      and info["nextBuildNumber"] == 2 and [b["number"] for b in info["builds"]] == [1], info)

# -- parameters
params = (
    "<hudson.model.StringParameterDefinition><name>GREETING</name><defaultValue>hi</defaultValue>"
    "</hudson.model.StringParameterDefinition>"
    "<hudson.model.BooleanParameterDefinition><name>LOUD</name><defaultValue>false</defaultValue>"
    "</hudson.model.BooleanParameterDefinition>"
    "<hudson.model.ChoiceParameterDefinition><name>OS</name><choices class='java.util.Arrays$ArrayList'>"
    "<a class='string-array'><string>linux</string><string>mac</string></a></choices>"
    "</hudson.model.ChoiceParameterDefinition>"
)
server.create_job("py-params", job_xml("echo greeting=$GREETING loud=$LOUD os=$OS", params))
definitions = server.get_job_info("py-params")["property"][0]["parameterDefinitions"]
check("parameter definitions", [d["name"] for d in definitions] == ["GREETING", "LOUD", "OS"]
      and definitions[0]["defaultParameterValue"]["value"] == "hi"
      and definitions[2]["choices"] == ["linux", "mac"], definitions)
queue_id = server.build_job("py-params", {"GREETING": "bonjour", "LOUD": "true", "token": "ignored"})
number = started_build(queue_id)
build = finished("py-params", number)
console = server.get_build_console_output("py-params", number)
check("build_job with parameters", build["result"] == "SUCCESS"
      and "greeting=bonjour loud=true os=linux" in console, console)
values = [a for a in build["actions"] if a.get("_class") == "hudson.model.ParametersAction"]
check("the build's parameters", values and values[0]["parameters"] == [
    {"_class": "hudson.model.StringParameterValue", "name": "GREETING", "value": "bonjour"},
    {"_class": "hudson.model.BooleanParameterValue", "name": "LOUD", "value": True},
    {"_class": "hudson.model.StringParameterValue", "name": "OS", "value": "linux"},
], build["actions"])
e = raises(lambda: server.build_job("py-params", {"OS": "windows"}), requests.exceptions.HTTPError)
check("a value that is not a choice is refused", e is not None and e.response.status_code == 400
      and "windows" in e.response.text, e)
e = raises(lambda: server.build_job("py-params"), requests.exceptions.HTTPError)
check("build of a parameterized job without parameters is refused", e is not None
      and e.response.status_code == 400 and "Nothing is submitted" in e.response.text, e)

# -- a failing build, a disabled job, an unknown job
server.create_job("py-fail", job_xml("echo about to fail; exit 3"))
number = started_build(server.build_job("py-fail"))
build = finished("py-fail", number)
check("a failing job gives FAILURE", build["result"] == "FAILURE", build)
check("its job is red", server.get_job_info("py-fail")["color"] == "red")
server.disable_job("py-fail")
e = raises(lambda: server.build_job("py-fail"), requests.exceptions.HTTPError)
check("a disabled job is not built", e is not None and e.response.status_code == 409, e)
check("a disabled job's colour", server.get_job_info("py-fail")["color"] == "disabled")
server.enable_job("py-fail")
check("enable_job", server.get_job_info("py-fail")["color"] == "red")
check("build_job of an unknown job",
      raises(lambda: server.build_job("py-nope"), jenkins.NotFoundException) is not None)
check("get_job_info of an unknown job",
      raises(lambda: server.get_job_info("py-nope"), jenkins.JenkinsException) is not None)
check("get_build_info of an unknown build",
      raises(lambda: server.get_build_info("py-ok", 99999999999999999999999), jenkins.JenkinsException) is not None)
check("get_queue_item of an unknown item",
      raises(lambda: server.get_queue_item(987654321), jenkins.JenkinsException) is not None)

# -- a running build: blocked items, stop_build
server.create_job("py-slow", job_xml("echo slow-started; sleep 120"))
number = started_build(server.build_job("py-slow"))
wait_for("py-slow to print", lambda: "slow-started" in server.get_build_console_output("py-slow", number))
info = server.get_job_info("py-slow")
check("a building job's colour", info["color"] == "notbuilt_anime", info["color"])
running = [(b["name"], b["number"], b["node"]) for b in server.get_running_builds()]
check("get_running_builds", running == [("py-slow", number, agent_node)], running)
blocked_id = server.build_job("py-slow")
item = wait_for("the second py-slow build to be blocked",
                lambda: (lambda i: i if i.get("blocked") else None)(server.get_queue_item(blocked_id)))
check("a blocked item", item["why"] == f"Build #{number} is already in progress"
      and item["buildable"] is False and item["task"]["name"] == "py-slow", item)
check("the job shows its queue item", server.get_job_info("py-slow")["queueItem"]["id"] == blocked_id)
server.cancel_queue(blocked_id)
check("cancel_queue cancels", server.get_queue_item(blocked_id)["cancelled"] is True)
running = server.get_build_info("py-slow", number)
check("a running build", running["building"] is True and running["result"] is None, running)
server.stop_build("py-slow", number)
build = finished("py-slow", number)
check("stop_build aborts", build["result"] == "ABORTED", build)
check("an aborted job's colour", server.get_job_info("py-slow")["color"] == "aborted")

# -- a waiting item: why, and cancelling it
server.create_job("py-waiting", job_xml("echo never", label="no-such-label"))
waiting_id = server.build_job("py-waiting")
item = wait_for("py-waiting's reason", lambda: next(
    (i for i in server.get_queue_info()
     if i["id"] == waiting_id and i["why"] != "Waiting for the scheduler"), None))
check("get_queue_info shows the waiting item", item["task"]["name"] == "py-waiting"
      and "no-such-label" in item["why"] and item["stuck"] is True and item["buildable"] is True
      and item["inQueueSince"] > 0, item)
server.cancel_queue(waiting_id)
check("cancel_queue removes it", all(i["id"] != waiting_id for i in server.get_queue_info()))

# -- deleting a build: the record and console go, the permalinks move back
second = started_build(server.build_job("py-ok"))
check("a second build", second == 2, second)
finished("py-ok", second)
check("lastBuild before delete_build", server.get_build_info("py-ok", "lastBuild")["number"] == 2)
server.delete_build("py-ok", second)
check("delete_build removes the build",
      raises(lambda: server.get_build_info("py-ok", second), jenkins.JenkinsException) is not None)
check("lastBuild after delete_build", server.get_build_info("py-ok", "lastBuild")["number"] == 1)
check("delete_build of a missing build",
      raises(lambda: server.delete_build("py-ok", second), jenkins.JenkinsException) is not None)
check("the next build number goes on", server.get_job_info("py-ok")["nextBuildNumber"] == 3)

# -- the job list, deleting
colors = {j["name"]: j["color"] for j in server.get_jobs()}
check("get_jobs lists jobs with colours", colors == {
    "py-ok": "blue", "py-params": "blue", "py-fail": "red", "py-slow": "aborted",
    "py-waiting": "notbuilt"}, colors)
server.delete_job("py-ok")
check("delete_job", not server.job_exists("py-ok"))
check("a deleted job's builds are gone",
      raises(lambda: server.get_build_info("py-ok", 1), jenkins.JenkinsException) is not None)
# -- quieting down before a restart
server.quiet_down()
check("quiet_down", server.get_info()["quietingDown"] is True)
cancelled = requests.post(url.rstrip("/") + "/cancelQuietDown", auth=(user, token), allow_redirects=False)
check("cancelQuietDown", cancelled.status_code == 302 and server.get_info()["quietingDown"] is False,
      cancelled.status_code)
print("all checks passed")
