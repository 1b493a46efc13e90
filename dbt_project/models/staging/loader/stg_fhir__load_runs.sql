with

source as (

    select * from {{ source('fhir', 'load_runs') }}

),

final as (

    select

        ---------- ids
        run_id,
        source_system,

        ---------- attributes
        command,
        status as run_status,
        error as error_message,

        ---------- counts
        files_read,
        resources_read,
        resources_landed,
        resources_merged,
        resources_unchanged,
        resources_quarantined,
        landing_pages,

        ---------- timestamps (UTC)
        {{ to_utc_timestamp('started_at') }} as started_at,
        {{ to_utc_timestamp('finished_at') }} as finished_at

    from source

)

select * from final
