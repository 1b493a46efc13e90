{# fakesnow target only: overrides of dbt-snowflake macros the emulator cannot run; real Snowflake SQL is unchanged. #}
{#
    fakesnow (a Snowflake emulator on DuckDB, the `fakesnow` target in profiles.yml) runs the
    first build of every model, but second runs of incremental models and snapshots fail on
    three emulator limits (measured with fakesnow 0.12, dbt-snowflake 1.12; see
    /work/shared/notes/snowflake-without-an-account.md):

    * temporary tables and views cannot be schema-qualified, and dbt qualifies them: the
      fakesnow target creates transient tables / plain views instead, and drops the snapshot
      staging table itself (a temporary one would vanish with the session);
    * its MERGE emulation makes the unqualified `insert (...) values (...)` columns ambiguous:
      they are qualified with DBT_INTERNAL_SOURCE;
    * MERGE cannot run inside dbt-snowflake's `begin; ...; commit;` wrapper: none is added.

    Each macro delegates to dbt-snowflake's own version on every other target, so the SQL sent
    to Snowflake is exactly dbt-snowflake's.

    Functions fakesnow lacks or runs wrongly are handled where they are used, by a branch on
    target.name == 'fakesnow': filter() and array_to_string() on VARIANT arrays
    (json_array_find, fhir_extension, fhir_human_name), try_to_timestamp_tz (json_timestamp),
    flatten(outer => true) (flatten_json_array). tests/integration/test_dbt_fakesnow.py runs the
    project on this target; test_dbt_snowflake_sql.py checks the snowflake target's SQL.
#}

{% macro fakesnow_compat_active() -%}
    {{ return(target.name == 'fakesnow') }}
{%- endmacro %}

{% macro snowflake__create_view_as_with_temp_flag(relation, sql, is_temporary=False) -%}
    {%- if fakesnow_compat_active() -%}
        {{ return(dbt.snowflake__create_view_as_with_temp_flag(relation, sql, False)) }}
    {%- else -%}
        {{ return(dbt.snowflake__create_view_as_with_temp_flag(relation, sql, is_temporary)) }}
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__create_table_temporary_sql(relation, compiled_code) -%}
    {%- if fakesnow_compat_active() -%}
        create or replace transient table {{ relation }} as (
            {{ compiled_code }}
        )
    {%- else -%}
        {{ return(dbt.snowflake__create_table_temporary_sql(relation, compiled_code)) }}
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__post_snapshot(staging_relation) -%}
    {%- if fakesnow_compat_active() -%}
        {% do adapter.drop_relation(staging_relation) %}
    {%- else -%}
        {{ return(dbt.default__post_snapshot(staging_relation)) }}
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__get_merge_sql(target, source_sql, unique_key, dest_columns, incremental_predicates) -%}
    {%- set sql = dbt.snowflake__get_merge_sql(target, source_sql, unique_key, dest_columns, incremental_predicates) -%}
    {%- if fakesnow_compat_active() and unique_key -%}
        {{ return(fakesnow_qualify_insert_values(sql)) }}
    {%- endif -%}
    {{ return(sql) }}
{%- endmacro %}

{% macro snowflake__snapshot_merge_sql(target, source, insert_cols) -%}
    {%- set sql = dbt.snowflake__snapshot_merge_sql(target, source, insert_cols) -%}
    {%- if fakesnow_compat_active() -%}
        {{ return(fakesnow_qualify_insert_values(sql)) }}
    {%- endif -%}
    {{ return(sql) }}
{%- endmacro %}

{% macro snowflake_dml_explicit_transaction(dml) -%}
    {%- if fakesnow_compat_active() -%}
        {{ return(dml) }}
    {%- endif -%}
    {{ return(dbt.snowflake_dml_explicit_transaction(dml)) }}
{%- endmacro %}

{# fakesnow only: qualify the columns of a MERGE's `insert (...) values (...)` list with DBT_INTERNAL_SOURCE. #}
{% macro fakesnow_qualify_insert_values(sql) -%}
    {%- set matches = modules.re.findall('values\\s*\\(([^()]*)\\)', sql, modules.re.IGNORECASE) -%}
    {%- if not matches -%}
        {{ return(sql) }}
    {%- endif -%}
    {%- set columns = matches[-1] -%}
    {%- set qualified = [] -%}
    {%- for column in columns.split(',') -%}
        {%- do qualified.append('DBT_INTERNAL_SOURCE.' ~ column | trim) -%}
    {%- endfor -%}
    {%- set position = sql.rfind(columns) -%}
    {{ return(sql[:position] ~ qualified | join(', ') ~ sql[position + columns | length:]) }}
{%- endmacro %}
