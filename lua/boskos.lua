-- boskos: placeholder until the client module lands.
return {}
