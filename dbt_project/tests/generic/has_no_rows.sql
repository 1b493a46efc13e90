{# Fails (or warns, by its severity) when the model has any row: for alert models, where a row is an open alert. #}
{% test has_no_rows(model) %}
    select * from {{ model }}
{% endtest %}
