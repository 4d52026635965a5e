-- Clusters marked toBeDeleted: before `clean` runs, bosk releases the
-- resources listed in the cluster's leasedResources user data as dirty and
-- clears the entry (what upstream's cleaner does); then the cluster goes
-- to tombstone.
janitor.policy{
  type = "gke-cluster",
  from = boskos.TO_BE_DELETED, to = boskos.TOMBSTONE,
  timeout = "1h",
  clean = function(res)
    janitor.log{ msg = "deleting cluster", name = res.name }
    return true
  end,
}
