{#-
    The reporting currency every money KPI is stated in: var reporting_currency, which
    defaults to the environment variable DW_REPORTING_CURRENCY, which defaults to usd.
    A lower-case ISO 4217 code, checked here so it can be written into SQL as a literal.
-#}
{% macro reporting_currency() -%}
    {%- set code = var('reporting_currency', env_var('DW_REPORTING_CURRENCY', 'usd'))
        | string | trim | lower -%}
    {%- if not modules.re.fullmatch('[a-z]{3}', code) -%}
        {{ exceptions.raise_compiler_error(
            "reporting currency must be a three-letter ISO 4217 code (DW_REPORTING_CURRENCY "
            ~ "or var reporting_currency), got '" ~ code ~ "'") }}
    {%- endif -%}
    {{ return(code) }}
{%- endmacro %}


{#-
    Decimal places of a currency's minor unit, as Stripe counts amounts: 0 for its
    zero-decimal currencies, 3 for its three-decimal ones, else 2.
-#}
{% macro currency_decimals(currency) -%}
    case
        when {{ currency }} in (
            'bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx',
            'vnd', 'vuv', 'xaf', 'xof', 'xpf'
        ) then 0
        when {{ currency }} in ('bhd', 'jod', 'kwd', 'omr', 'tnd') then 3
        else 2
    end
{%- endmacro %}
