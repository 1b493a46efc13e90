"""Operations: run metrics, budgets, alerts and their webhook, ``status``, ``doctor``, dry runs.

Everything here reads or writes counts, timings and names of sources and resource types; none
of it handles a resource payload, an identifier or a full URL.
"""
