"""Self-registration: admins issue registration tokens (/wsexec/registrations); a new server holding one fetches
/wsexec/register.sh, which trusts the service's key and registers the server with its host key pinned."""
