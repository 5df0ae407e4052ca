"""Every example of tastypy's documentation, unchanged but for the import,
with persistence checked from a fresh interpreter as the docs describe."""

from __future__ import annotations

from conftest import run_python


def test_data_stored_is_preserved_after_the_program_exits(tmp_path):
    path = str(tmp_path / "path/to/my.pod")
    # `exit()` in the docs: the interpreter ends, the pod syncs.
    run_python(
        "from tastypod import POD\n"
        "my_pod = POD(%r)\n"
        "my_pod['foo'] = 'bar'\n"
        "exit()\n" % path
    )
    out = run_python("from tastypod import POD\nmy_pod = POD(%r)\nprint(repr(my_pod['foo']))" % path)
    assert out.stdout.strip() == "'bar'"


def test_json_only_gotchas(tmp_path):
    path = str(tmp_path / "my.pod")
    run_python(
        "from tastypod import POD\n"
        "my_pod = POD(%r)\n"
        "my_pod['integer-key'] = {1:'bar'}\n"
        "my_pod['tuple'] = ('baz', 42)\n"
        "exit()\n" % path
    )
    out = run_python(
        "from tastypod import POD\n"
        "my_pod = POD(%r)\n"
        "print(repr(my_pod['integer-key']))\n"
        "print(repr(my_pod['tuple']))\n" % path
    )
    assert out.stdout.splitlines() == ["{'1': 'bar'}", "['baz', 42]"]


def test_changes_through_the_pod_are_synchronized(tmp_path):
    path = str(tmp_path / "my.pod")
    run_python(
        "from tastypod import POD\n"
        "my_pod = POD(%r)\n"
        "my_pod['key'] = {}\n"
        "my_pod['key']['subkey1'] = 1\n"
        "my_pod['key']['subkey2'] = []\n"
        "my_pod['key']['subkey2'].append(1)\n" % path
    )
    out = run_python("from tastypod import POD\nprint(POD(%r)['key'])" % path)
    assert out.stdout.strip() == "{'subkey1': 1, 'subkey2': [1]}"


def test_changes_through_another_reference_are_not_seen(tmp_path):
    path = str(tmp_path / "my.pod")
    run_python(
        "from tastypod import POD\n"
        "my_pod = POD(%r)\n"
        "value = {'subkey1': []}\n"
        "my_pod['key'] = value   # This is ok\n"
        "value['subkey1'].append('foo')  # not seen, due to use of non-POD ref\n"
        "value['subkey2'] = 'baz'    # also not seen.\n" % path
    )
    out = run_python("from tastypod import POD\nprint(POD(%r)['key'])" % path)
    assert out.stdout.strip() == "{'subkey1': []}"


def test_mutable_value_then_update_key(tmp_path):
    path = str(tmp_path / "my.pod")
    run_python(
        "from tastypod import POD\n"
        "my_pod = POD(%r)\n"
        "my_pod['mutable'] = [1,2,3]\n"
        "my_pod['mutable'].append(4)\n"
        "my_pod.update('mutable')\n" % path
    )
    out = run_python("from tastypod import POD\nprint(POD(%r)['mutable'])" % path)
    assert out.stdout.strip() == "[1, 2, 3, 4]"



def test_the_tracker_loops_of_the_docs(tmp_path):
    path = str(tmp_path / "path/to/my.tracker")
    code = '''
import tastypod as tastypy
MAX_TRIES = 2
class Task:
    def __init__(self, name): self.name = name
class Result:
    def __init__(self, ok): self.success = ok
def attempt(task):
    return Result(not task.name.endswith("7"))

def do_work(work_queue):

    tracker = tastypy.Tracker(%r)

    for task in work_queue:

        # If the task has be done, skip it
        if tracker.check(task.name):
            continue

        # Add the task if it is not already in the tracker
        if task.name not in tracker:
            tracker.add(task.name)

        # Skip this task if we've tried it too many times
        if tracker.tries(task.name) > MAX_TRIES:
            continue

        # Now attempt the task
        tracker.increment_tries(task.name)
        result = attempt(task)

        # If it succeeded, mark the task done, and record results
        if result.success:
            tracker.mark_done(task.name)
            tracker[task.name]['result'] = 'ok'

do_work([Task("t%%d" %% i) for i in range(10)])
'''
    run_python(code % path)
    run_python(code % path)
    out = run_python(
        "import tastypod\n"
        "t = tastypod.Tracker(%r)\n"
        "print(t.num_done(), t.tries('t7'), t['t3']['result'], t['t3']['_done'])" % path
    )
    assert out.stdout.split() == ["9", "2", "ok", "True"]

    path2 = str(tmp_path / "second.tracker")
    code2 = '''
import tastypod as tastypy
class Task:
    def __init__(self, name): self.name = name
def do_work(work_queue):

    tracker = tastypy.Tracker(%r, max_tries=3)

    for task in work_queue:

        # Skip tasks that are done or tried too many times
        if not tracker.try_it(task.name):
            continue

        # Do the work
        result = len(task.name)

        # Mark the task done and record results
        tracker.mark_done(task.name)
        tracker[task.name]['result'] = result

do_work([Task("task-%%d" %% i) for i in range(5)])
'''
    run_python(code2 % path2)
    out = run_python(
        "import tastypod\n"
        "t = tastypod.Tracker(%r)\n"
        "print(t.num_done(), t['task-3']['result'], t.tries('task-3'), t.max_tries)" % path2
    )
    assert out.stdout.split() == ["5", "6", "1", "3"]


def test_hold_sync_unhold(tmp_path):
    from tastypod import POD

    pod = POD(tmp_path / "p", sync_at=2)
    pod.hold()
    for i in range(5):
        pod[f"k{i}"] = i
    assert pod._n.dirty_len() == 5
    pod.sync()
    assert pod._n.dirty_len() == 0
    pod["x"] = 1
    pod["y"] = 2
    assert pod._n.dirty_len() == 2  # held: no automatic sync
    pod.unhold()
    assert pod._n.dirty_len() == 0
