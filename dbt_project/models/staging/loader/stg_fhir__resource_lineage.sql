{#-
    The loader's lineage columns of every raw resource row of the types the canonical models
    read, one union: no resource JSON is read. A view (the loader folder's default), so it
    always shows the raw tables as they are.
-#}
{%- set lineage_tables = [
    'patient',
    'encounter',
    'condition',
    'observation',
    'procedure',
    'medication_request',
    'medication_dispense',
    'immunization',
    'allergy_intolerance',
    'organization',
    'location',
    'practitioner',
] -%}

with

unioned as (

    {% for table in lineage_tables %}
        select
            source_system,
            resource_type,
            id,
            version_id,
            last_updated,
            is_deleted,
            fetched_at,
            request_id,
            landing_file,
            _dlt_load_id
        from {{ source('fhir', table) }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as resource_source_key,
        id as resource_id,
        source_system,
        resource_type,
        version_id,

        ---------- lineage
        request_id,
        landing_file,
        _dlt_load_id as load_id,

        ---------- flags
        coalesce(is_deleted, false) as is_deleted,

        ---------- timestamps (UTC)
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at

    from unioned

)

select * from final
