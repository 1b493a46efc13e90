{{
    config(
        unique_key='diagnostic_report_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'diagnostic_report'), 'diagnostic_report_source_key') }}",
    )
}}

with

source as (

    {{ fhir_optional_source(source('fhir', 'diagnostic_report')) }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_diagnostic_reports as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as diagnostic_report_source_key,
        id as diagnostic_report_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,
        {{ fhir_reference('resource', 'performer[0]', 'id') }} as performer_id,
        {{ fhir_reference('resource', 'performer[0]', 'type') }} as performer_type,

        ---------- codes
        {{ json_string('resource', 'status') }} as diagnostic_report_status,
        {{ fhir_codeable_concept('resource', 'category[0]', var('diagnostic_service_section_system'), 'code') }}
            as report_category_code,
        {{ fhir_codeable_concept('resource', 'code', var('loinc_system'), 'code') }} as report_code,
        {{ fhir_codeable_concept('resource', 'code', var('loinc_system'), 'system') }} as report_system,
        {{ fhir_codeable_concept('resource', 'code', var('loinc_system'), 'display') }} as report_display,
        {{ fhir_codeable_concept('resource', 'code', none, 'text') }} as report_text,
        {{ fhir_codeable_concept('resource', 'code', none, 'codings') }} as report_codings,
        {{ json_string('resource', 'conclusion') }} as conclusion,

        ---------- timestamps (UTC)
        coalesce(
            {{ json_timestamp('resource', 'effectiveDateTime') }},
            {{ fhir_period('resource', 'effectivePeriod', 'start') }}
        ) as effective_at,
        {{ json_timestamp('resource', 'issued') }} as issued_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_diagnostic_reports

)

select * from final
