// A field path below a message's trail, rendered only when a diagnostic needs it.
import EnvoySchema

/// A field below a trail: the text of `MessageView.join`, built only when a problem is reported.
struct JoinedPath: Sendable {
    let trail: PathTrail?
    let name: String

    var rendered: String {
        let base = trail?.rendered ?? ""
        return base.isEmpty ? name : base + "." + name
    }
}

extension MessageView {
    /// Field `name` of this message as a path rendered only when reported.
    func joined(_ name: String) -> JoinedPath { JoinedPath(trail: trail, name: name) }
}
