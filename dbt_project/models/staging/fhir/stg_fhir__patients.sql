{{
    config(
        unique_key='patient_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'patient'), 'patient_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'patient') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_patients as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as patient_source_key,
        id as patient_id,
        source_system,

        ---------- demographics
        {{ json_string('resource', 'gender') }} as gender_code,
        {{ json_date('resource', 'birthDate') }} as birth_date,
        coalesce(
            {{ json_boolean('resource', 'deceasedBoolean') }},
            {{ json_string('resource', 'deceasedDateTime') }} is not null,
            false
        ) as is_deceased,
        {{ json_timestamp('resource', 'deceasedDateTime') }} as deceased_at,

        ---------- US Core race and ethnicity (first OMB category)
        {{ fhir_extension('resource', var('us_core_race_url'), 'valueCoding.code', sub_url='ombCategory') }}
            as race_code,
        {{ fhir_extension('resource', var('us_core_race_url'), 'valueCoding.display', sub_url='ombCategory') }}
            as race_display,
        {{ fhir_extension('resource', var('us_core_race_url'), 'valueString', sub_url='text') }}
            as race_text,
        {{ fhir_extension('resource', var('us_core_ethnicity_url'), 'valueCoding.code', sub_url='ombCategory') }}
            as ethnicity_code,
        {{ fhir_extension('resource', var('us_core_ethnicity_url'), 'valueCoding.display', sub_url='ombCategory') }}
            as ethnicity_display,
        {{ fhir_extension('resource', var('us_core_ethnicity_url'), 'valueString', sub_url='text') }}
            as ethnicity_text,

        ---------- identifiers (PHI)
        {{ fhir_identifier('resource', var('mrn_system')) }} as mrn,
        {{ fhir_identifier('resource', var('ssn_system')) }} as ssn,

        ---------- name (PHI; the official name, else the first)
        {{ fhir_human_name('resource', 'name', 'official', 'family') }} as family_name,
        {{ fhir_human_name('resource', 'name', 'official', 'given') }} as given_names,

        ---------- address (PHI; the first address)
        {{ json_string('resource', 'address[0].line[0]') }} as address_line,
        {{ json_string('resource', 'address[0].city') }} as address_city,
        {{ json_string('resource', 'address[0].state') }} as address_state,
        {{ json_string('resource', 'address[0].postalCode') }} as address_postal_code,
        {{ json_string('resource', 'address[0].country') }} as address_country,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_patients

)

select * from final
