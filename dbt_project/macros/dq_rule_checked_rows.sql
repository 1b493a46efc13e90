{# The denominator of a data rule (one dq_* test): a select of `checked_rows` over the tested relation. #}
{#
    For mart data_quality_rule_results. Each generic test of tests/generic returns checked_rows
    only beside failing rows, so with no failure the denominator is lost; this recomputes it
    the way each test's header defines it (records with a value, distinct codes, ...). A
    generic test not listed here gets a null denominator (and a null rate): add a branch when
    adding a generic test that data rules use.
    relation: the tested relation (a where config already applied); args: the test's rendered
    arguments (dict).
#}
{% macro dq_rule_checked_rows(test_name, relation, column_name, args) -%}
    {%- if test_name in ('value_in_seed', 'not_in_future', 'reference_resolves') -%}
        select count(*) as checked_rows
        from {{ relation }}
        where {{ column_name }} is not null
    {%- elif test_name == 'not_before' -%}
        select count(*) as checked_rows
        from {{ relation }}
        where
            {{ column_name }} is not null
            and {{ args['start_column'] }} is not null
    {%- elif test_name == 'null_rate_below' -%}
        select count(*) as checked_rows
        from {{ relation }}
    {%- elif test_name == 'identifier_unique_across_patients' -%}
        {%- set partition_columns = args.get('partition_columns', ['source_system']) -%}
        select count(*) as checked_rows
        from (
            select distinct
                {% for partition_column in partition_columns -%}
                    {{ partition_column }},
                {% endfor -%}
                {{ column_name }}
            from {{ relation }}
            where {{ column_name }} is not null
        ) as identifiers
    {%- elif test_name == 'one_unit_per_code' -%}
        select count(distinct {{ args['code_column'] }}) as checked_rows
        from {{ relation }}
        where
            {{ column_name }} is not null
            and {{ args['code_column'] }} is not null
    {%- elif test_name == 'plausible_value_for_code' -%}
        select count(*) as checked_rows
        from {{ relation }} as records
        inner join {{ args['ranges_from'] }} as ranges
            on
                records.{{ args['code_column'] }} = ranges.{{ args.get('ranges_code_column', 'loinc_code') }}
                and records.{{ args['unit_column'] }} = ranges.{{ args.get('ranges_unit_column', 'unit_code') }}
        where records.{{ column_name }} is not null
    {%- elif test_name == 'unit_valid_for_code' -%}
        select count(*) as checked_rows
        from {{ relation }}
        where
            {{ column_name }} is not null
            and {{ args['code_column'] }} in (
                select {{ args.get('units_code_column', 'loinc_code') }}
                from {{ args['units_from'] }}
            )
    {%- else -%}
        select cast(null as bigint) as checked_rows
    {%- endif -%}
{%- endmacro %}
