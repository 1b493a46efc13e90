-- A resource type whose latest reconciliation (`fhir-elt reconcile`) left windows that still
-- differ from the source (status delta or over_budget) by more than
-- var alert_reconciliation_max_delta_rate of the source's count. Empty while nothing reconciles.

with

checks as (

    select * from {{ ref('stg_fhir__reconciliation_checks') }}

),

latest_runs as (

    select
        source_system,
        resource_type,
        run_id,
        row_number() over (
            partition by source_system, resource_type
            order by max(checked_at) desc, run_id desc
        ) as run_rank
    from checks
    group by 1, 2, 3

),

latest_run_totals as (

    select
        checks.source_system,
        checks.resource_type,
        checks.run_id,
        coalesce(sum(checks.source_count), 0) as source_count,
        coalesce(sum(checks.warehouse_count), 0) as warehouse_count,
        coalesce(sum(
            case
                when checks.check_status in ('delta', 'over_budget') then abs(checks.count_delta)
                else 0
            end
        ), 0) as unresolved_delta
    from checks
    inner join latest_runs
        on
            checks.source_system = latest_runs.source_system
            and checks.resource_type = latest_runs.resource_type
            and checks.run_id = latest_runs.run_id
    where latest_runs.run_rank = 1
    group by 1, 2, 3

),

final as (

    select
        'reconciliation_delta' as alert_kind,
        source_system,
        resource_type,
        run_id,
        cast(unresolved_delta as double) as observed_value,
        {{ var('alert_reconciliation_max_delta_rate', 0.001) }} * source_count as threshold,
        resource_type || ' from ' || source_system || ': ' || cast(unresolved_delta as varchar)
        || ' resource(s) still differ after the latest reconciliation (source '
        || cast(source_count as varchar) || ', warehouse '
        || cast(warehouse_count as varchar) || ')' as message
    from latest_run_totals
    where unresolved_delta > {{ var('alert_reconciliation_max_delta_rate', 0.001) }} * source_count

)

select * from final
