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

results as (

    select
        current_diagnostic_reports.source_system,
        current_diagnostic_reports.id,
        current_diagnostic_reports.last_updated,
        current_diagnostic_reports._dlt_load_id,
        {{ flattened_index('report_results') }} as result_index,
        {{ flattened_value('report_results') }} as result_reference
    from current_diagnostic_reports
    {{ flatten_json_array('current_diagnostic_reports.resource', 'result', 'report_results') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} || '|' || cast(result_index as varchar)
            as diagnostic_report_result_source_key,
        {{ fhir_resource_key('source_system', 'id') }} as diagnostic_report_source_key,
        id as diagnostic_report_id,
        result_index,
        source_system,

        ---------- references
        {{ fhir_reference('result_reference', '', 'id') }} as observation_id,
        {{ fhir_reference('result_reference', '', 'type') }} as result_type,

        ---------- record metadata
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        _dlt_load_id

    from results

)

select * from final
