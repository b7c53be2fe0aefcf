"""Resource providers for the Pulumi engine, speaking its gRPC protocol, for
machines where Pulumi's own docker and random plugins cannot be downloaded
or built. They implement the resources and properties the dataplatform
program declares, under the same type tokens, so the program is unchanged.
"""
