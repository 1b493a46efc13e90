{#
    value_in_seed: the column's value is one of the codes in a seed (or any model) column.
    Unlike dbt's accepted_values (one row per distinct bad value), returns ONE ROW PER OFFENDING
    RECORD, so the failure count equals the number of bad records. Nulls pass (use not_null).
    arguments: values_from (a ref), values_column (the code column there), values_where (optional
    SQL filter on values_from, e.g. "value_set = 'observation-status'" for seed fhir_value_sets).
    checked_rows (every row): records with a value, for rate thresholds (macro rate_above).
#}
{% test value_in_seed(model, column_name, values_from, values_column='code', values_where=none) %}

with

records as (

    select {{ column_name }} as tested_value
    from {{ model }}
    where {{ column_name }} is not null

),

allowed_values as (

    select distinct {{ values_column }} as allowed_value
    from {{ values_from }}
    {% if values_where -%}
        where {{ values_where }}
    {%- endif %}

),

checked as (

    select count(*) as checked_rows
    from records

),

final as (

    select
        records.tested_value,
        checked.checked_rows
    from records
    cross join checked
    left join allowed_values
        on records.tested_value = allowed_values.allowed_value
    where allowed_values.allowed_value is null

)

select * from final

{% endtest %}
