"""Drives the controller's REST API with python-jenkins, the way scripts in the wild do.

Usage: nodes_api.py URL USER TOKEN AGENT_NODE
Exits non-zero with the failing check on stderr; prints one line per check passed.
"""
import sys

import jenkins

url, user, token, agent_node = sys.argv[1:5]
server = jenkins.Jenkins(url, username=user, password=token, timeout=20)


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED {name}: {detail}")
    print(f"ok {name}")


check("get_version", server.get_version() != "", server.get_version())
me = server.get_whoami()
check("get_whoami", me["id"] == user and me["_class"] == "hudson.model.User", me)

names = {n["name"]: n["offline"] for n in server.get_nodes()}
check("built-in node listed", "Built-In Node" in names, names)
check("agent node online", names.get(agent_node) is False, names)

server.create_node("py-node", numExecutors=3, nodeDescription="made by python-jenkins",
                   remoteFS="/tmp/py", labels="py linux", exclusive=True,
                   launcher=jenkins.LAUNCHER_JNLP)
check("node_exists after create", server.node_exists("py-node"))
info = server.get_node_info("py-node")
check("node info", info["numExecutors"] == 3 and info["offline"] is True
      and {"name": "py"} in info["assignedLabels"], info)
config = server.get_node_config("py-node")
check("config.xml", "<mode>EXCLUSIVE</mode>" in config and "<remoteFS>/tmp/py</remoteFS>" in config, config)
server.reconfig_node("py-node", config.replace("py linux", "py arm"))
check("reconfig_node", "<label>py arm</label>" in server.get_node_config("py-node"))

try:
    server.create_node("py-node")
    check("duplicate create refused", False)
except jenkins.JenkinsException as e:
    check("duplicate create refused", "already exists" in str(e), e)

server.disable_node(agent_node, "maintenance")
info = server.get_node_info(agent_node)
check("disable_node", info["offline"] is True and info["temporarilyOffline"] is True
      and info["offlineCauseReason"].endswith("maintenance"), info)
server.enable_node(agent_node)
check("enable_node", server.get_node_info(agent_node)["offline"] is False)

server.delete_node("py-node")
check("delete_node", not server.node_exists("py-node"))
check("Built-In Node info", server.get_node_info("Built-In Node")["numExecutors"] == 0)

bad = jenkins.Jenkins(url, username=user, password="wrong", timeout=20)
try:
    bad.get_whoami()
    check("wrong token refused", False)
except jenkins.JenkinsException as e:
    check("wrong token refused", "401" in str(e) or "Unauthorized" in str(e), e)
print("all checks passed")
