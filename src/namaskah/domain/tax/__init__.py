"""Tax: a rate per buyer country (edited by operators) and the one rule that splits or adds it in minor units."""
