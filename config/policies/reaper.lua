-- Stale leases (a CI job that died without releasing) go back to dirty
-- after 30 minutes without a heartbeat, as upstream's reaper does; and a
-- scheduled job reports once an hour. Neither runs with --once.
janitor.reaper{
  types = { "gce-project", "aws-account", "ci-runner" },
  states = { "busy", "cleaning", "leased" },
  expire = "30m",
  dest = boskos.DIRTY,
  every = "1m",
}

janitor.every("1h", function()
  local ok, out = janitor.exec{ "df", "-h", "/" }
  janitor.log{ msg = "hourly disk report", output = out }
  return ok
end, "disk-report")
