"""Drives views and the plugin list through python-jenkins, the way scripts in the wild do.

Usage: views_api.py URL USER TOKEN
The controller has the jobs web-app, web-docs and api (no builds needed). Exits non-zero
with the failing check on stderr; prints one line per check passed.
"""
import sys

import jenkins

url, user, token = sys.argv[1:4]
server = jenkins.Jenkins(url, username=user, password=token, timeout=20)

VIEW = """<?xml version="1.0" encoding="UTF-8"?>
<hudson.model.ListView>
  <name>ignored</name>
  <description>%s</description>
  <filterExecutors>false</filterExecutors>
  <filterQueue>false</filterQueue>
  <properties class="hudson.model.View$PropertyList"/>
  <jobNames>
    <comparator class="hudson.util.CaseInsensitiveComparator"/>
    %s
  </jobNames>
  <jobFilters/>
  <columns/>
  %s
</hudson.model.ListView>"""


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED {name}: {detail}")
    print(f"ok {name}")


def names(jobs):
    return sorted(j["name"] for j in jobs)


views = server.get_views()
check("the built-in view is listed", [v["name"] for v in views] == ["all"], views)
check("all exists", server.view_exists("all"))
check("All is the built-in view too", server.view_exists("All"))
check("no such view", not server.view_exists("nope"))
check(
    "every job in all",
    names(server.get_jobs(view_name="all")) == ["api", "web-app", "web-docs"],
    server.get_jobs(view_name="all"),
)

server.create_view("web", VIEW % ("Front end", "", "<includeRegex>web-.*</includeRegex>"))
check("created", server.view_exists("web"))
check("listed", sorted(v["name"] for v in server.get_views()) == ["all", "web"])
jobs = server.get_jobs(view_name="web")
check("the pattern selects", names(jobs) == ["web-app", "web-docs"], jobs)
check("jobs have fullname", all(j["fullname"] == j["name"] for j in jobs), jobs)
config = server.get_view_config("web")
check("config names the view", "<name>web</name>" in config, config)
check("config keeps the pattern", "<includeRegex>web-.*</includeRegex>" in config, config)
try:
    server.create_view("web", VIEW % ("", "", ""))
    check("a taken name is refused", False)
except jenkins.JenkinsException as e:
    check("a taken name is refused", "already exists" in str(e), e)

server.reconfig_view("web", VIEW % ("Only the API", "<string>api</string>", ""))
check("reconfigured", names(server.get_jobs(view_name="web")) == ["api"])
check("the name stays", server.view_exists("web"))
info = server.get_info(item="view/web")
check("description", info["description"] == "Only the API", info)

server.delete_view("web")
check("deleted", not server.view_exists("web"))
try:
    server.get_jobs(view_name="web")
    check("jobs of a deleted view", False)
except jenkins.JenkinsException as e:
    check("jobs of a deleted view", "does not exist" in str(e), e)

plugins = server.get_plugins()
check("the git plugin", "git" in plugins and "Git plugin" in plugins, list(plugins.keys()))
check("the same entry by both names", plugins["git"] is plugins["Git plugin"])
git = server.get_plugin_info("git")
check("by short name", git["shortName"] == "git" and git["version"] == "5.2.1", git)
check("by long name", server.get_plugin_info("Git plugin")["shortName"] == "git")
check("an absent plugin", server.get_plugin_info("maven-plugin") is None)
check("junit", server.get_plugin_info("junit")["active"] is True)

print("all checks passed")
