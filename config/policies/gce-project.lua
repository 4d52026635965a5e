-- GCP projects: run the external cleaner exactly as upstream's janitor does
-- (`--project=NAME`, no shell: the name is passed as one literal argument).
-- The script sits in ../scripts/ next to this file.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local script = here .. "../scripts/gcp-janitor.sh"

janitor.policy{
  type = "gce-project",
  from = boskos.DIRTY, via = boskos.CLEANING, to = boskos.FREE,
  concurrency = 4,
  timeout = "30m",
  clean = function(res)
    local ok, output, code = janitor.exec{ script, "--project=" .. res.name, timeout = "25m" }
    if not ok then
      return nil, string.format("gcp-janitor exited %s: %s", tostring(code), output:sub(-500))
    end
    return true
  end,
}
