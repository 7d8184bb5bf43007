"""Stage 3, run: a sweep of cases through isolated worker processes into a run folder.

`sweep` (presets, TOML, the grid) and `settings` (one flag or key, validated)
define the grid; `budget` skips what cannot fit; `plugins` loads third-party
variants; `forkserver` forks the workers, `worker` (the process) and `client`
(the runner's end of its pipe) isolate each measurement, `reaper` ends what a
variant left running, and `isolated` answers one-off requests (attention maps,
contract checks) the same way; `executor` (local) and `cluster` (Ray) decide
where cases run; `runner` orchestrates; `folder` locks a run folder and guards
a resume; `results` owns the folder's files and turns records into the results
table, `files` writes them whole or not at all, and `damaged` distrusts rows a
damaged file cannot back; `progress` reports on stderr.
"""
