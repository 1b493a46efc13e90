-- A resource type whose latest sync merged nothing new although its recent history says it
-- should have: most of its previous runs merged new or changed rows.

with

metrics as (

    select * from {{ ref('stg_fhir__run_metrics') }}

),

type_syncs as (

    select
        source_system,
        resource_type,
        run_id,
        run_started_at,
        resources_merged,
        row_number() over (
            partition by source_system, resource_type
            order by run_started_at desc, run_id desc
        ) as sync_rank
    from metrics
    where
        resource_type != '(untyped)'
        and type_status = 'succeeded'
        and command != 'backfill'

),

latest_syncs as (

    select * from type_syncs
    where sync_rank = 1

),

sync_history as (

    select
        source_system,
        resource_type,
        count(*) as history_runs,
        sum(case when resources_merged > 0 then 1 else 0 end) as runs_with_new_rows
    from type_syncs
    where sync_rank between 2 and {{ var('alert_history_runs', 10) }} + 1
    group by 1, 2

),

latest_compared_to_history as (

    select
        latest_syncs.source_system,
        latest_syncs.resource_type,
        latest_syncs.run_id,
        latest_syncs.resources_merged,
        sync_history.history_runs,
        sync_history.runs_with_new_rows
    from latest_syncs
    inner join sync_history
        on
            latest_syncs.source_system = sync_history.source_system
            and latest_syncs.resource_type = sync_history.resource_type
    where
        latest_syncs.resources_merged = 0
        and sync_history.history_runs >= {{ var('alert_min_history_runs', 3) }}
        and sync_history.runs_with_new_rows
        >= {{ var('alert_expected_rows_share', 0.8) }} * sync_history.history_runs

),

final as (

    select
        'no_new_rows' as alert_kind,
        source_system,
        resource_type,
        run_id,
        cast(resources_merged as double) as observed_value,
        cast(runs_with_new_rows as double) / history_runs as threshold,
        'no new rows for ' || resource_type || ' from ' || source_system
        || ' in its latest sync, while ' || cast(runs_with_new_rows as varchar)
        || ' of its previous ' || cast(history_runs as varchar) || ' syncs had some' as message
    from latest_compared_to_history

)

select * from final
