{#-
    A log lift shrunk toward a prior: the precision-weighted mean of the observed log lift
    (standard error `se`) and the prior mean (standard deviation `prior_sd`), as a normal
    prior and a normal likelihood combine. With many checkpoints the standard error is
    small and the observation dominates; with few it is large and the prior does. Where
    nothing was compared (`se` null) it is the prior.
-#}
{% macro shrink_log_lift(observed, se, prior_mean, prior_sd) %}
    (case
        when ({{ se }}) is null then ({{ prior_mean }})::float8
        else (
            ({{ observed }}) / power({{ se }}, 2)
            + ({{ prior_mean }}) / power({{ prior_sd }}::float8, 2)
        ) / (1 / power({{ se }}, 2) + 1 / power({{ prior_sd }}::float8, 2))
    end)
{% endmacro %}
