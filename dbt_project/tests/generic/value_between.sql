{#
    value_between: the column's value lies within [min_value, max_value] (bounds inclusive; either
    may be omitted), e.g. a rate between 0 and 1. One row per offending record; nulls pass.
    arguments: min_value, max_value (numbers or SQL expressions).
#}
{% test value_between(model, column_name, min_value=none, max_value=none) %}

with

final as (

    select {{ column_name }} as tested_value
    from {{ model }}
    where
        {{ column_name }} is not null
        and (
            {% if min_value is not none -%}
                {{ column_name }} < {{ min_value }}
            {%- else -%}
                1 = 0
            {%- endif %}
            or {% if max_value is not none -%}
                {{ column_name }} > {{ max_value }}
            {%- else -%}
                1 = 0
            {%- endif %}
        )

)

select * from final

{% endtest %}
