"""Common code every CityDesk service imports: contracts, settings, storage, auth, metrics."""
