// MeshServer's users see the mesh model it serves (access records, subscription modes) without a second import.
@_exported import MeshModel
