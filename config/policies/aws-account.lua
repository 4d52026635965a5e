-- AWS accounts: a cleaning written in Lua. A failure (false, nil+err or an
-- error) sends the account to "quarantine" instead of back to dirty, so a
-- person can look at it; everything else goes back to free.
janitor.policy{
  type = "aws-account",
  on_failure = "quarantine",
  concurrency = 2,
  timeout = "10m",
  clean = function(res)
    local region = res.userdata:get("region") or "us-east-1"
    janitor.log{ msg = "sweeping account", name = res.name, region = region }
    -- e.g. janitor.exec{ "aws-nuke", "--config", "nuke.yaml", "--force", timeout = "9m" }
    return true
  end,
}
