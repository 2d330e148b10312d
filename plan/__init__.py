"""Offline tooling: run the program under Pulumi's mocks, report the plan, draw it, check it.

This package imports the program (``__main__.py``, ``stacks``, ``components``,
the policy rules); nothing in ``stacks/`` or ``components/`` imports it.
"""
