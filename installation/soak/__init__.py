"""The soak harness: `python -m installation.soak --minutes N [--faults] [--json] [--log PATH]`.

Runs the real app as a child process for N minutes (headless, demo inputs, a tiny model),
injects faults on a schedule and reports how each was recovered from. `workdir.py` writes what
the soak needs (the tiny model, a shows folder of its own, the soak show); `child.py` runs the
app; `schedule.py` says when each fault comes; `osc_client.py` and `applog.py` are how the
harness talks to the app and reads its event log; `runner.py` injects and watches;
`report.py` judges and prints. The app's side is `core/faults.py` and `core/soak_probe.py`,
active only with `python run.py --faults`.
"""
