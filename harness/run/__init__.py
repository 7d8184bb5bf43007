"""Stage 3, run: a sweep of cases through isolated worker processes into a run folder.

`sweep` and `flags` define the grid; `budget` skips what cannot fit;
`plugins` loads third-party variants; `worker` (the process) and `client`
(the runner's end of its pipe) isolate each measurement; `runner` orchestrates;
`folder` locks a run folder and guards a resume; `results` owns the folder's
files and turns records into the results table; `progress` reports on stderr.
"""
