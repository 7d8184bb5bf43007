"""Stage 3, run: a sweep of cases through isolated worker processes into a run folder.

`sweep` (presets, TOML, the grid, its fields the rows of
`harness.measure.fields`) defines the grid, and `legacy` reads run folders
written by earlier versions as today's; `budget` skips what cannot fit
(third-party variants load through `variants.plugins`); `forkserver` forks the workers, `worker` (the process) and `client`
(the runner's end of its pipe) isolate each measurement, `reaper` ends what a
variant left running, and `isolated` answers one-off requests (attention maps,
contract checks) the same way; `executor` (local) and `cluster` (Ray) decide
where cases run; `runner` orchestrates; `folder` locks a run folder and guards
a resume; `results` owns the folder's files and turns records into the results
table, `files` writes them whole or not at all, and `damaged` distrusts rows a
damaged file cannot back; `progress` reports on stderr.
"""
