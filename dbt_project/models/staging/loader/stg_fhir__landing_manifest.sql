with

source as (

    select * from {{ source('fhir', 'landing_manifest') }}

),

final as (

    select

        ---------- ids
        landing_file,
        run_id,
        source_system,

        ---------- attributes
        resource_type,
        resource_count,
        size_bytes,
        sha256,

        ---------- timestamps (UTC)
        {{ to_utc_timestamp('created_at') }} as created_at

    from source

)

select * from final
