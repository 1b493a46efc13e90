with

source as (

    select * from {{ source('fhir', 'quarantine') }}

),

final as (

    select

        ---------- ids
        run_id,
        source_system,
        source_file,
        line_number,
        json_path,
        resource_id,

        ---------- attributes
        resource_type,
        reason as reject_reason,
        landing_file,

        ---------- timestamps (UTC)
        {{ to_utc_timestamp('quarantined_at') }} as quarantined_at

    from source

)

select * from final
