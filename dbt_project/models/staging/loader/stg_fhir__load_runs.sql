{#-
    The provenance columns arrived later (loaders/warehouse/operational.py RunRecord): a
    warehouse whose last run predates them reads them as null until its next run adds them.
-#}
{%- set provenance_columns = ['credential_client_id', 'resource_types', 'code_version', 'code_commit'] -%}
{%- set present_columns = [] -%}
{%- if execute and flags.INTROSPECT -%}
    {%- set relation = load_relation(source('fhir', 'load_runs')) -%}
    {%- if relation is not none -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do present_columns.append(column.name | lower) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endif -%}
{%- set provenance = {} -%}
{%- for name in provenance_columns -%}
    {%- if not present_columns or name in present_columns -%}
        {%- do provenance.update({name: name}) -%}
    {%- else -%}
        {%- do provenance.update({name: 'cast(null as varchar) as ' ~ name}) -%}
    {%- endif -%}
{%- endfor -%}

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

        ---------- provenance (never a secret)
        {{ provenance['credential_client_id'] }},
        {{ provenance['resource_types'] }},
        {{ provenance['code_version'] }},
        {{ provenance['code_commit'] }},

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
