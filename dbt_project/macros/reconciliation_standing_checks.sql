{# The reconciliation checks that still stand: those no later run has superseded with an overlapping window. #}
{#
    Pass a relation (or CTE name) with the columns of stg_fhir__reconciliation_checks. A check
    of a source system, resource type and window (window_start_at, window_end_at] stands until
    a later run checks an overlapping window of the same source and type; runs are ordered by
    their last check's time (then run_id). Window boundaries differ between runs (a
    reconciliation bisects where counts differ), so "latest per window" is defined by overlap.
    Used by reconciliation_status and encounter_completeness, so the second does not depend on
    the first (whose threshold test may fail the build and would skip it).
#}
{% macro reconciliation_standing_checks(checks) -%}
    select checks_with_run_time.*
    from (
        select
            *,
            max(checked_at) over (partition by run_id) as run_checked_at
        from {{ checks }}
    ) as checks_with_run_time
    where not exists (
        select 1
        from {{ checks }} as later_checks
        inner join (
            select run_id, max(checked_at) as run_checked_at
            from {{ checks }}
            group by run_id
        ) as later_runs
            on later_checks.run_id = later_runs.run_id
        where
            later_checks.source_system = checks_with_run_time.source_system
            and later_checks.resource_type = checks_with_run_time.resource_type
            and (
                later_runs.run_checked_at > checks_with_run_time.run_checked_at
                or (
                    later_runs.run_checked_at = checks_with_run_time.run_checked_at
                    and later_checks.run_id > checks_with_run_time.run_id
                )
            )
            and (
                later_checks.window_start_at is null
                or later_checks.window_start_at < checks_with_run_time.window_end_at
            )
            and (
                checks_with_run_time.window_start_at is null
                or checks_with_run_time.window_start_at < later_checks.window_end_at
            )
    )
{%- endmacro %}
