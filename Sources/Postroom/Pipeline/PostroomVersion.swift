/// The version of Postroom, as `postroom --version` prints it and the tracking log's CSV header names it.
public enum PostroomVersion {
    public static let current = "0.1.0"
}
