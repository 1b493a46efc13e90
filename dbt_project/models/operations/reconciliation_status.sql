with

checks as (

    select * from {{ ref('stg_fhir__reconciliation_checks') }}

),

standing_checks as (

    {{ reconciliation_standing_checks('checks') }}

),

final as (

    select

        ---------- ids
        source_system,
        resource_type,
        run_id,

        ---------- window (UTC)
        window_start_at,
        window_end_at,

        ---------- outcome
        check_status,
        check_status in ('delta', 'over_budget') as is_failing,
        is_repaired,
        is_ids_compared,

        ---------- measures
        source_count,
        warehouse_count,
        count_delta,
        initial_count_delta,
        resources_fetched,
        marked_deleted,

        ---------- timestamps (UTC)
        checked_at

    from standing_checks

)

select * from final
