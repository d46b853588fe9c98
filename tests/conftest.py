"""Run the long test groups first: with ``--dist loadgroup`` each group (one Verilator build
shared by its tests, the bitstreams, the simulated board) is one unit of work; starting them
first lets the many short tests fill the other worker instead of a long group finishing alone
at the end."""

LONG_GROUPS = ("verilator", "bitstreams", "board_sim", "link_fuzz")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        mark = item.get_closest_marker("xdist_group")
        group = (mark.args[0] if mark and mark.args else mark.kwargs.get("name")) if mark else None
        return LONG_GROUPS.index(group) if group in LONG_GROUPS else len(LONG_GROUPS)
    items.sort(key=rank)            # stable: the order within each rank is kept
