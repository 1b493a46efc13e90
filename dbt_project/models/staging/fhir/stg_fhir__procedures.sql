{{
    config(
        unique_key='procedure_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'procedure'), 'procedure_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'procedure') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_procedures as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as procedure_source_key,
        id as procedure_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,
        {{ fhir_reference('resource', 'performer[0].actor', 'id') }} as performer_id,
        {{ fhir_reference('resource', 'performer[0].actor', 'type') }} as performer_type,
        {{ fhir_reference('resource', 'location', 'id') }} as location_id,
        {{ fhir_reference('resource', 'reasonReference[0]', 'id') }} as reason_reference_id,
        {{ fhir_reference('resource', 'reasonReference[0]', 'type') }} as reason_reference_type,

        ---------- codes
        {{ json_string('resource', 'status') }} as procedure_status,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'code') }} as procedure_code,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'system') }} as procedure_system,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'display') }} as procedure_display,
        {{ fhir_codeable_concept('resource', 'code', none, 'text') }} as procedure_text,
        {{ fhir_codeable_concept('resource', 'code', none, 'codings') }} as procedure_codings,
        {{ fhir_codeable_concept('resource', 'category', var('snomed_system'), 'code') }} as procedure_category_code,
        {{ fhir_codeable_concept('resource', 'reasonCode[0]', var('snomed_system'), 'code') }} as reason_code,

        ---------- timestamps (UTC): performedDateTime, else performedPeriod
        coalesce(
            {{ json_timestamp('resource', 'performedDateTime') }},
            {{ fhir_period('resource', 'performedPeriod', 'start') }}
        ) as performed_started_at,
        {{ fhir_period('resource', 'performedPeriod', 'end') }} as performed_ended_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_procedures

)

select * from final
