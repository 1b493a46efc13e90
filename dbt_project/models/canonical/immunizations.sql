with

immunizations as (

    select * from {{ ref('stg_fhir__immunizations') }}

),

final as (

    select

        ---------- ids (keyed hashes for clinical resources; location key as in locations)
        {{ keyed_hash('immunization_source_key') }} as immunization_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        {{ fhir_resource_key('source_system', 'location_id') }} as location_key,
        source_system,

        ---------- codes
        immunization_status,
        status_reason_code,
        vaccine_code,
        vaccine_display,

        ---------- flags
        coalesce(immunization_status = 'completed', false) as is_completed,
        is_primary_source,

        ---------- timestamps (UTC)
        occurred_at,
        cast(occurred_at as date) as occurred_date,
        recorded_at,

        ---------- record metadata
        last_updated_at

    from immunizations

)

select * from final
