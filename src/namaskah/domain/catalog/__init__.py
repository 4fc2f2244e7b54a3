"""The catalog: services for sale, their provider costs, markups and the prices each tier pays."""
